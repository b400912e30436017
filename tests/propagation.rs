//! Contexts across clients and services: a context made before `init` or under a stopped client
//! records into the running one; `traceparent` and `baggage` carry the trace and its session and
//! user through a real HTTP request (reqwest's `HeaderMap`); propagation can be turned off.
//! Each test runs its own in-memory client, one at a time.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use observe_runtime::{
    current_observation_id, current_trace, span, Config, Exporter, FinishedSpan, FlushGuard,
    MemoryExporter, TraceContext,
};
use reqwest::header::HeaderMap;

fn start(config: Config) -> (MemoryExporter, FlushGuard) {
    let memory = MemoryExporter::new();
    let guard = config
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .expect("init");
    (memory, guard)
}

fn named<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span named {name} in {spans:#?}"))
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_context_made_before_init_records_once_tracing_runs() {
    let _serial = support::serial();
    let context = TraceContext::from_traceparent(CALLER)
        .expect("valid")
        .with_baggage("langfuse_session_id=early-session");
    let early = context.clone();
    let (memory, guard) = start(Config::default());
    {
        let _attached = early.attach();
        span("after-init").start().end();
    }
    guard.shutdown().expect("shutdown");
    let spans = memory.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(
        span.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        span.parent_span_id.map(|id| id.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(span.trace.session_id.as_deref(), Some("early-session"));
}

#[test]
fn a_context_taken_under_a_stopped_client_records_into_the_running_one() {
    let _serial = support::serial();
    let (first, guard) = start(Config::default());
    let root = span("first-root").start();
    current_trace().user_id("carried-user");
    let context = TraceContext::current().expect("a running trace");
    let root_id = current_observation_id().expect("recorded");
    root.end();
    guard.shutdown().expect("shutdown");

    let (second, guard) = start(Config::default());
    std::thread::spawn(move || {
        let _attached = context.attach();
        span("second-child").start().end();
    })
    .join()
    .unwrap();
    guard.shutdown().expect("shutdown");

    let names = |m: &MemoryExporter| {
        m.spans()
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["first-root"]);
    assert_eq!(names(&second), ["second-child"]);
    let child = &second.spans()[0];
    assert_eq!(child.parent_span_id, Some(root_id));
    assert_eq!(child.trace.user_id.as_deref(), Some("carried-user"));
}

/// A one-request HTTP service on 127.0.0.1: reads the request head into a `HeaderMap`, handles it
/// in the caller's context, answers 200.
fn serve_one(listener: TcpListener) -> std::thread::JoinHandle<HeaderMap> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut headers = HeaderMap::new();
        let mut line = String::new();
        reader.read_line(&mut line).expect("the request line");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a header line");
            let text = line.trim_end();
            if text.is_empty() {
                break;
            }
            let (name, value) = text.split_once(':').expect("name: value");
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                value.trim().parse().unwrap(),
            );
        }
        match TraceContext::extract(&headers) {
            Ok(Some(context)) => {
                let _attached = context.attach();
                span("handle-request").start().end();
            }
            other => panic!("no context in {headers:?}: {other:?}"),
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .expect("answer");
        headers
    })
}

/// Calls the service from inside a "call-service" span with session and user set; returns the
/// headers the service saw.
fn call_service(extra_baggage: Option<&str>) -> HeaderMap {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/answer", listener.local_addr().unwrap());
    let service = serve_one(listener);
    let call = span("call-service").start();
    current_trace()
        .session_id("chat-42")
        .user_id("alice")
        .tags(["prod"]);
    let mut headers = HeaderMap::new();
    if let Some(extra) = extra_baggage {
        headers.insert("baggage", extra.parse().unwrap());
    }
    TraceContext::current()
        .expect("a running trace")
        .inject(&mut headers);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a client")
            .get(&url)
            .headers(headers)
            .send()
            .await
            .expect("the request")
            .status()
    });
    assert_eq!(status, 200);
    call.end();
    service.join().expect("the service")
}

#[test]
fn a_request_carries_the_trace_with_its_session_and_user_to_a_service() {
    let _serial = support::serial();
    let (memory, guard) = start(Config::default());
    let seen = call_service(Some("vendor=kept,langfuse_user_id=stale"));
    guard.shutdown().expect("shutdown");

    assert_eq!(
        seen.get("baggage").and_then(|v| v.to_str().ok()),
        Some("vendor=kept,langfuse_session_id=chat-42,langfuse_user_id=alice,langfuse_tags=%5B%22prod%22%5D"),
        "another vendor's entry is kept, ours replace the stale ones"
    );
    let spans = memory.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let call = named(&spans, "call-service");
    let handled = named(&spans, "handle-request");
    assert_eq!(handled.trace_id, call.trace_id, "one trace");
    assert_eq!(handled.parent_span_id, Some(call.span_id));
    assert_eq!(handled.trace.session_id.as_deref(), Some("chat-42"));
    assert_eq!(handled.trace.user_id.as_deref(), Some("alice"));
    assert_eq!(handled.trace.tags, ["prod"]);
}

#[test]
fn with_propagation_off_only_the_traceparent_travels() {
    let _serial = support::serial();
    let (memory, guard) = start(Config::default().propagate_attributes(false));
    let seen = call_service(None);
    // Incoming baggage is ignored too: an untrusted caller cannot name the user.
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", CALLER.parse().unwrap());
    headers.insert("baggage", "langfuse_user_id=mallory".parse().unwrap());
    let context = TraceContext::extract(&headers).unwrap().unwrap();
    {
        let _attached = context.attach();
        span("untrusted").start().end();
    }
    guard.shutdown().expect("shutdown");

    assert!(seen.get("traceparent").is_some());
    assert_eq!(seen.get("baggage"), None);
    let spans = memory.spans();
    let handled = named(&spans, "handle-request");
    assert_eq!(
        handled.parent_span_id,
        Some(named(&spans, "call-service").span_id)
    );
    assert_eq!(handled.trace.session_id, None);
    assert_eq!(named(&spans, "untrusted").trace.user_id, None);
}

#[test]
fn malformed_headers_are_refused_with_the_reason() {
    let mut headers = HeaderMap::new();
    assert!(TraceContext::extract(&headers).unwrap().is_none());
    headers.insert("traceparent", "00-abc-00f067aa0ba902b7-01".parse().unwrap());
    assert_eq!(
        TraceContext::extract(&headers).unwrap_err().to_string(),
        "invalid traceparent \"00-abc-00f067aa0ba902b7-01\": the trace id is not 32 lowercase hex \
         characters, not all zero; expected \"00-<32 lowercase hex trace id>-<16 lowercase hex \
         parent id>-<2 hex flags>\""
    );
    headers.insert("traceparent", CALLER.parse().unwrap());
    headers.append("traceparent", CALLER.parse().unwrap());
    assert_eq!(
        TraceContext::extract(&headers).unwrap_err().to_string(),
        format!(
            "invalid traceparent \"{CALLER}\": the request has more than one traceparent header; \
             expected \"00-<32 lowercase hex trace id>-<16 lowercase hex parent id>-<2 hex flags>\""
        )
    );
}

fn child_env(command: &std::process::Command) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = command
        .get_envs()
        .filter_map(|(k, v)| {
            let k = k.to_string_lossy().into_owned();
            let keep = k == "BAGGAGE" || k == "TRACEPARENT" || k == "LANGFUSE_PROPAGATE_ATTRIBUTES";
            keep.then(|| {
                (
                    k,
                    v.map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
        })
        .collect();
    vars.sort();
    vars
}

#[test]
fn apply_to_passes_the_attributes_unless_propagation_is_off() {
    let _serial = support::serial();
    for propagate in [true, false] {
        let (_memory, guard) = start(Config::default().propagate_attributes(propagate));
        let root = span("dispatch").start();
        current_trace().session_id("s 1").user_id("u");
        let context = TraceContext::current().expect("a running trace");
        let mut command = std::process::Command::new("worker");
        context.apply_to(&mut command);
        root.end();
        guard.shutdown().expect("shutdown");

        let traceparent = ("TRACEPARENT".to_string(), context.to_traceparent());
        let expected = if propagate {
            vec![
                (
                    "BAGGAGE".to_string(),
                    "langfuse_session_id=s%201,langfuse_user_id=u".to_string(),
                ),
                traceparent,
            ]
        } else {
            vec![
                (
                    "LANGFUSE_PROPAGATE_ATTRIBUTES".to_string(),
                    "false".to_string(),
                ),
                traceparent,
            ]
        };
        assert_eq!(child_env(&command), expected, "propagate = {propagate}");
    }
}
