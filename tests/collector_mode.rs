//! Generic collector mode, the way a fleet runs it: hosts without Langfuse keys, configured only
//! with `OTEL_EXPORTER_OTLP_*`, send to an OpenTelemetry Collector that forwards to Langfuse.
//!
//! The same program runs in child processes (the environment is the configuration, as on a host):
//! once in Langfuse mode, once in collector mode against a second fake server standing in for
//! Langfuse behind a collector, with exactly the headers a collector's `otlphttp` exporter sends.
//! The collector-mode requests must carry those headers, percent-decoded, and the same spans; and
//! without a configured `Authorization` the SDK must not make one up.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use observe_runtime::{current_observation, current_trace, span, ObservationType};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

use support::server::{NO_AUTHORIZATION_HEADER, TRACES_PATH};
use support::{child_mode, run_child, Answer, FakeLangfuse, ReceivedSpan, RecordedRequest};

const TEST: &str = "collector_mode_sends_the_spans_of_langfuse_mode_with_the_configured_headers";
const PUBLIC_KEY: &str = "pk-lf-fleet";
const SECRET_KEY: &str = "sk-lf-fleet";
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// The line the child prints when its shutdown delivered everything.
const DELIVERED: &str = "program: shutdown delivered everything";
/// The start of the line the child prints when its shutdown reported a failure.
const NOT_DELIVERED: &str = "program: shutdown failed: ";

/// Settings every run shares, so that only the target differs.
const COMMON_ENV: [(&str, &str); 6] = [
    ("OTEL_SERVICE_NAME", "fleet-worker"),
    ("LANGFUSE_TRACING_ENVIRONMENT", "production"),
    ("LANGFUSE_RELEASE", "rel-7"),
    ("LANGFUSE_FLUSH_INTERVAL", "60"),
    ("LANGFUSE_TIMEOUT", "5"),
    ("LANGFUSE_SHUTDOWN_TIMEOUT", "20"),
];

/// The program every run executes: a root with a child and a grandchild, trace attributes set
/// first (so that every span carries them), input and output on each.
fn program() {
    let guard = observe_runtime::init().expect("init from the environment");
    let root = span("handle-request")
        .as_type(ObservationType::Agent)
        .input(json!({"question": "what is a span?"}))
        .start();
    current_trace()
        .name("fleet-request")
        .user_id("user-7")
        .session_id("chat-42")
        .tags(["fleet", "batch"])
        .metadata("shard", 3);
    let retrieve = span("retrieve")
        .as_type(ObservationType::Retriever)
        .input(json!({"query": "span"}))
        .start();
    let embed = span("embed-query")
        .as_type(ObservationType::Embedding)
        .input("span")
        .start();
    current_observation()
        .output(json!([0.25, 0.5]))
        .metadata("dimensions", 2);
    embed.end();
    current_observation().output(json!(["a span is a timed operation"]));
    retrieve.end();
    current_observation().output(json!({"answer": "a timed operation"}));
    root.end();
    match guard.shutdown() {
        Ok(_) => println!("{DELIVERED}"),
        Err(error) => println!("{NOT_DELIVERED}{error}"),
    }
}

/// Runs [`program`] in a child process with `env` added to [`COMMON_ENV`].
fn run_program(env: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = COMMON_ENV.to_vec();
    all.extend_from_slice(env);
    let output = run_child(TEST, "program", &all, CHILD_TIMEOUT);
    output.assert_success();
    output.stdout + &output.stderr
}

/// Percent-encodes a header value the way `OTEL_EXPORTER_OTLP_HEADERS` wants it (a space becomes
/// `%20`); the characters of base64 stay as they are.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'+'
            | b'/'
            | b'=' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The `OTEL_EXPORTER_OTLP_HEADERS` text of these (name, value) pairs.
fn otlp_headers(headers: &[(&str, &str)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Name to parent name (`None` for the root); panics unless the names are unique, since spans are
/// matched across runs by name.
fn tree(spans: &[ReceivedSpan]) -> BTreeMap<String, Option<String>> {
    let names: BTreeSet<&str> = spans.iter().map(ReceivedSpan::name).collect();
    assert_eq!(
        names.len(),
        spans.len(),
        "span names are unique within a run: {names:?}"
    );
    let name_of: BTreeMap<String, String> = spans
        .iter()
        .map(|span| (span.span_id(), span.name().to_owned()))
        .collect();
    spans
        .iter()
        .map(|span| {
            let parent = span.parent_span_id();
            let parent_name = (!parent.is_empty()).then(|| {
                name_of.get(&parent).cloned().unwrap_or_else(|| {
                    panic!(
                        "the parent {parent} of {:?} is not among the spans received",
                        span.name()
                    )
                })
            });
            (span.name().to_owned(), parent_name)
        })
        .collect()
}

/// A span's attributes by key.
fn attribute_set(span: &ReceivedSpan) -> BTreeMap<String, String> {
    let set: BTreeMap<String, String> = span
        .span
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                format!("{:?}", kv.value.as_ref().and_then(|any| any.value.as_ref())),
            )
        })
        .collect();
    assert_eq!(
        set.len(),
        span.span.attributes.len(),
        "{:?} has no attribute twice: {:?}",
        span.name(),
        span.attr_keys()
    );
    set
}

/// A span without what differs from run to run (ids and timestamps) and without its attributes,
/// which are compared as a set.
fn without_ids_and_times(span: &ReceivedSpan) -> Span {
    let mut span = span.span.clone();
    span.trace_id.clear();
    span.span_id.clear();
    span.parent_span_id.clear();
    span.start_time_unix_nano = 0;
    span.end_time_unix_nano = 0;
    span.attributes.clear();
    for event in &mut span.events {
        event.time_unix_nano = 0;
    }
    for link in &mut span.links {
        link.trace_id.clear();
        link.span_id.clear();
    }
    span
}

/// Resource attributes by key, and the instrumentation scope's name and version.
fn envelope(span: &ReceivedSpan) -> (BTreeMap<String, String>, String, String) {
    let resource = span
        .resource
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                format!("{:?}", kv.value.as_ref().and_then(|any| any.value.as_ref())),
            )
        })
        .collect();
    (
        resource,
        span.scope.name.clone(),
        span.scope.version.clone(),
    )
}

fn header_count(request: &RecordedRequest, name: &str) -> usize {
    request
        .headers
        .iter()
        .filter(|(header, _)| header == name)
        .count()
}

#[test]
fn collector_mode_sends_the_spans_of_langfuse_mode_with_the_configured_headers() {
    if child_mode().as_deref() == Some("program") {
        program();
        return;
    }
    let _serial = support::serial();

    // 1. Langfuse mode: keys and base URL.
    let langfuse = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let langfuse_output = run_program(&[
        ("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY),
        ("LANGFUSE_SECRET_KEY", SECRET_KEY),
        ("LANGFUSE_BASE_URL", &langfuse.base_url()),
    ]);
    assert!(
        langfuse_output.contains(DELIVERED),
        "Langfuse mode delivers everything:\n{langfuse_output}"
    );
    let expected = langfuse.accepted_spans();
    let expected_tree = tree(&expected);
    assert_eq!(
        expected_tree,
        BTreeMap::from([
            ("handle-request".to_owned(), None),
            ("retrieve".to_owned(), Some("handle-request".to_owned())),
            ("embed-query".to_owned(), Some("retrieve".to_owned())),
        ]),
        "Langfuse mode: the program's tree (name to parent name)"
    );
    let root = support::by_name(&expected, "handle-request");
    assert_eq!(
        (root.str_attr("user.id"), root.str_attr("session.id")),
        (Some("user-7"), Some("chat-42")),
        "Langfuse mode: the trace attributes are there to compare"
    );
    assert_eq!(
        root.json_attr("langfuse.observation.output"),
        Some(json!({"answer": "a timed operation"})),
        "Langfuse mode: the root's output is there to compare"
    );

    // 2. Collector mode: no keys; the traces URL and the headers of a collector's `otlphttp`
    // exporter configured for Langfuse, plus a header of the fleet's own.
    let collector = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let authorization = support::basic_auth(collector.public_key(), collector.secret_key());
    let configured = [
        ("Authorization", authorization.as_str()),
        ("x-langfuse-ingestion-version", "4"),
        ("x-team", "ml"),
    ];
    let headers_variable = otlp_headers(&configured);
    assert!(
        headers_variable.starts_with("Authorization=Basic%20"),
        "the space of the Basic value is written %20: {headers_variable}"
    );
    let collector_output = run_program(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &format!("{}{TRACES_PATH}", collector.base_url()),
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", &headers_variable),
    ]);
    assert!(
        collector_output.contains(DELIVERED),
        "collector mode delivers everything:\n{collector_output}"
    );

    let requests = collector.trace_requests();
    assert_eq!(
        requests.len(),
        1,
        "collector mode sent no traces request to {TRACES_PATH}; requests seen: {:?}",
        collector
            .requests()
            .iter()
            .map(|request| format!("{} {}", request.method, request.path))
            .collect::<Vec<_>>()
    );
    let configured_names: BTreeSet<String> = configured
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    for request in &requests {
        let index = request.index;
        assert_eq!(
            request.answer,
            Answer::Status(200),
            "collector-mode request {index} is accepted"
        );
        for (name, value) in configured {
            assert_eq!(
                request.header(name),
                Some(value),
                "collector-mode request {index} carries the header {name} of \
                 OTEL_EXPORTER_OTLP_HEADERS, percent-decoded"
            );
            assert_eq!(
                header_count(request, &name.to_ascii_lowercase()),
                1,
                "collector-mode request {index} carries the header {name} once"
            );
        }
        let langfuse_headers: Vec<&str> = request
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| *name == "authorization" || name.starts_with("x-langfuse-"))
            .filter(|name| !configured_names.contains(*name))
            .collect();
        assert_eq!(
            langfuse_headers,
            Vec::<&str>::new(),
            "collector-mode request {index} carries no Langfuse header that was not configured"
        );
    }

    let received = collector.accepted_spans();
    assert_eq!(
        received.len(),
        expected.len(),
        "collector mode sends as many spans as Langfuse mode"
    );
    assert_eq!(
        tree(&received),
        expected_tree,
        "collector mode sends the same tree (name to parent name)"
    );
    let trace_ids: BTreeSet<String> = received.iter().map(ReceivedSpan::trace_id).collect();
    assert_eq!(
        trace_ids.len(),
        1,
        "collector mode: the spans share one trace"
    );
    for want in &expected {
        let name = want.name();
        let got = support::by_name(&received, name);
        assert_eq!(
            attribute_set(got),
            attribute_set(want),
            "collector mode: the attributes of {name:?} are those of Langfuse mode"
        );
        assert_eq!(
            without_ids_and_times(got),
            without_ids_and_times(want),
            "collector mode: {name:?} is the span of Langfuse mode but for ids and timestamps"
        );
        assert_eq!(
            envelope(got),
            envelope(want),
            "collector mode: {name:?} comes with the resource and scope of Langfuse mode"
        );
    }

    // 3. Collector mode without an Authorization header, through the base endpoint variable: the
    // SDK sends the configured headers only, so Langfuse answers "No authorization header".
    let unauthorized = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let output = run_program(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("{}/api/public/otel", unauthorized.base_url()),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            &otlp_headers(&[("x-langfuse-ingestion-version", "4"), ("x-team", "ml")]),
        ),
    ]);
    let requests = unauthorized.trace_requests();
    assert_eq!(
        requests.len(),
        1,
        "OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces reaches {TRACES_PATH}; requests seen: {:?}\n{output}",
        unauthorized
            .requests()
            .iter()
            .map(|request| format!("{} {}", request.method, request.path))
            .collect::<Vec<_>>()
    );
    for request in &requests {
        let index = request.index;
        assert_eq!(
            request.header("authorization"),
            None,
            "request {index}: without a configured Authorization the SDK sends none"
        );
        assert_eq!(
            request.header("x-team"),
            Some("ml"),
            "request {index}: the configured headers are still sent"
        );
        assert_eq!(
            request.answer,
            Answer::Status(401),
            "request {index}: Langfuse refuses a request without Authorization"
        );
        assert_eq!(
            request.spans().len(),
            expected.len(),
            "request {index}: the refused request held the program's spans"
        );
    }
    assert!(
        output.contains(NOT_DELIVERED),
        "the child's shutdown reports the loss:\n{output}"
    );
    let told = format!(
        "The OTLP endpoint {}{TRACES_PATH} rejected the request with HTTP 401: \
         {NO_AUTHORIZATION_HEADER:?}. Check the headers in OTEL_EXPORTER_OTLP_HEADERS",
        unauthorized.base_url()
    );
    assert!(
        output.contains(&told),
        "the user is told which endpoint refused what, and where the headers are set; \
         expected {told:?} in:\n{output}"
    );
    assert!(
        !output.contains("LANGFUSE_PUBLIC_KEY"),
        "a host in collector mode has no Langfuse keys to check, so none are named:\n{output}"
    );
}
