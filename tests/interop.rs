//! Interop with the official Python SDK (langfuse 5.0.4, installed from PyPI into a virtual
//! environment of the tests' own): traces that cross from a Python service to a Rust worker or
//! service and back, with their session, user, tags, metadata, trace name and version on every
//! span; trace ids from seeds; experiment and local item ids; a prompt compiled by both clients.
//! Everything goes to one fake Langfuse server. When PyPI cannot be reached, each test says
//! SKIPPED on stderr and passes.

mod support;

use std::time::Duration;

use observe_runtime::{
    current_trace, get_prompt, observe, Config, DatasetItem, Experiment, FlushGuard, TraceContext,
    TraceId,
};
use serde_json::{json, Value};

use support::python::{python_peer, PythonPeer};
use support::{by_name, child_mode, serial, FakeLangfuse, ReceivedSpan};

const PUBLIC_KEY: &str = "pk-lf-interop";
const SECRET_KEY: &str = "sk-lf-interop";
const WAIT: Duration = Duration::from_secs(30);

fn peer() -> Option<&'static PythonPeer> {
    python_peer()
}

fn init(server: &FakeLangfuse) -> FlushGuard {
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(server.base_url())
        .init()
        .expect("init")
}

#[observe(name = "rust-worker")]
fn rust_worker() {
    rust_worker_child();
}

#[observe(name = "rust-worker-child")]
fn rust_worker_child() {}

/// The attributes the Python parent propagates, as they must arrive on every Rust span.
fn assert_python_attributes(span: &ReceivedSpan) {
    let name = span.name();
    assert_eq!(span.str_attr("session.id"), Some("chat 42"), "{name}");
    assert_eq!(span.str_attr("user.id"), Some("user-7"), "{name}");
    assert_eq!(
        span.string_array_attr("langfuse.trace.tags"),
        Some(vec!["interop".to_string(), "py".to_string()]),
        "{name}"
    );
    assert_eq!(
        span.str_attr("langfuse.trace.metadata.tier"),
        Some("\"gold+plus\""),
        "{name}"
    );
    assert_eq!(
        span.str_attr("langfuse.trace.name"),
        Some("interop-trace"),
        "{name}"
    );
    assert_eq!(span.str_attr("langfuse.version"), Some("v1"), "{name}");
}

/// The W3C headers of a span of the Python parent, after it reached the server.
fn python_parent(peer: &PythonPeer, server: &FakeLangfuse) -> (Value, ReceivedSpan) {
    let carrier = peer.run(server, &["parent"], &[], None);
    let spans = server.wait_for_spans(1, WAIT);
    let parent = by_name(&spans, "python-parent").clone();
    assert!(carrier["traceparent"]
        .as_str()
        .unwrap()
        .contains(&parent.span_id()));
    (carrier, parent)
}

#[test]
fn a_python_parent_and_a_rust_worker_make_one_trace() {
    if child_mode().as_deref() == Some("worker") {
        let _guard = observe_runtime::init().expect("init from the environment");
        rust_worker();
        return;
    }
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let (carrier, parent) = python_parent(peer, &server);
    let base_url = server.base_url();
    let output = child_test!(
        "worker",
        &[
            ("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY),
            ("LANGFUSE_SECRET_KEY", SECRET_KEY),
            ("LANGFUSE_BASE_URL", &base_url),
            ("TRACEPARENT", carrier["traceparent"].as_str().unwrap()),
            ("BAGGAGE", carrier["baggage"].as_str().unwrap()),
        ],
        WAIT,
    );
    output.assert_success();
    assert!(!output.stderr.contains("ignored"), "{}", output.stderr);
    let spans = server.wait_for_spans(3, WAIT);
    let worker = by_name(&spans, "rust-worker");
    let child = by_name(&spans, "rust-worker-child");
    assert_eq!(worker.trace_id(), parent.trace_id());
    assert_eq!(worker.parent_span_id(), parent.span_id());
    assert_eq!(child.parent_span_id(), worker.span_id());
    for span in [worker, child] {
        assert_python_attributes(span);
    }
}

#[test]
fn a_python_parent_and_a_rust_http_service_make_one_trace() {
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let (carrier, parent) = python_parent(peer, &server);
    let guard = init(&server);
    let mut headers = reqwest::header::HeaderMap::new();
    for name in ["traceparent", "baggage"] {
        headers.insert(name, carrier[name].as_str().unwrap().parse().unwrap());
    }
    {
        let context = TraceContext::extract(&headers)
            .expect("a valid traceparent")
            .expect("the request's context");
        let _attached = context.attach();
        rust_worker();
    }
    drop(guard);
    let spans = server.wait_for_spans(3, WAIT);
    let worker = by_name(&spans, "rust-worker");
    assert_eq!(worker.trace_id(), parent.trace_id());
    assert_eq!(worker.parent_span_id(), parent.span_id());
    for span in [worker, by_name(&spans, "rust-worker-child")] {
        assert_python_attributes(span);
    }
}

#[observe(name = "rust-parent")]
fn rust_parent(then: impl FnOnce(&TraceContext)) {
    current_trace()
        .session_id("chat 42")
        .user_id("user-7")
        .tags(["interop", "rs"])
        .metadata("tier", "gold+plus")
        .name("interop-trace")
        .version("v1");
    then(&TraceContext::current().expect("inside rust-parent"));
}

/// The attributes of the Rust parent, as the Python SDK sends them on its spans.
fn assert_rust_attributes(span: &ReceivedSpan) {
    let name = span.name();
    assert_eq!(span.str_attr("session.id"), Some("chat 42"), "{name}");
    assert_eq!(span.str_attr("user.id"), Some("user-7"), "{name}");
    // The Python SDK copies a baggage value as it came: our JSON array, which Langfuse reads
    // as the tag list.
    assert_eq!(
        span.str_attr("langfuse.trace.tags"),
        Some(r#"["interop","rs"]"#),
        "{name}"
    );
    // Metadata values travel as JSON text, as the Python SDK 5.x writes them.
    assert_eq!(
        span.str_attr("langfuse.trace.metadata.tier"),
        Some("\"gold+plus\""),
        "{name}"
    );
    assert_eq!(
        span.str_attr("langfuse.trace.name"),
        Some("interop-trace"),
        "{name}"
    );
    assert_eq!(span.str_attr("langfuse.version"), Some("v1"), "{name}");
}

fn python_side_of_rust_parent(server: &FakeLangfuse, worker: &str) {
    let spans = server.wait_for_spans(3, WAIT);
    let parent = by_name(&spans, "rust-parent");
    let python = by_name(&spans, worker);
    let child = by_name(&spans, &format!("{worker}-child"));
    assert_eq!(python.trace_id(), parent.trace_id());
    assert_eq!(python.parent_span_id(), parent.span_id());
    assert_eq!(child.parent_span_id(), python.span_id());
    for span in [python, child] {
        assert_rust_attributes(span);
    }
}

#[test]
fn a_rust_parent_and_a_python_worker_make_one_trace() {
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = init(&server);
    rust_parent(|context| {
        let mut command = std::process::Command::new("true");
        context.apply_to(&mut command);
        let env: Vec<(String, String)> = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
            .filter(|(k, _)| k == "TRACEPARENT" || k == "BAGGAGE")
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env.len(), 2, "{env:?}");
        peer.run(&server, &["worker-env"], &env, None);
    });
    drop(guard);
    python_side_of_rust_parent(&server, "python-worker");
}

#[test]
fn a_rust_parent_and_a_python_handler_make_one_trace() {
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = init(&server);
    rust_parent(|context| {
        let mut headers = reqwest::header::HeaderMap::new();
        context.inject(&mut headers);
        let carrier: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
            .collect();
        peer.run(
            &server,
            &["worker-headers", &Value::Object(carrier).to_string()],
            &[],
            None,
        );
    });
    drop(guard);
    python_side_of_rust_parent(&server, "python-handler");
}

#[test]
fn trace_ids_from_seeds_are_the_same() {
    let Some(peer) = peer() else { return };
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let seeds: Vec<String> = (0..17)
        .map(|i| format!("request-{i}"))
        // (Not the empty seed: the Python SDK makes a random id for it, this SDK hashes it.)
        .chain(["élan 🚀".to_string(), "x".to_string(), " ".to_string()])
        .collect();
    let mut args = vec!["trace-ids"];
    args.extend(seeds.iter().map(String::as_str));
    let python = peer.run(&server, &args, &[], None);
    let rust: Vec<String> = seeds
        .iter()
        .map(|s| TraceId::from_seed(s).to_string())
        .collect();
    assert_eq!(python, json!(rust));
}

#[test]
fn experiment_and_local_item_ids_are_the_same() {
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.put_dataset(json!({"id": "ds-interop", "name": "interop"}));
    server.put_dataset_item(json!({"datasetName": "interop", "id": "item-1", "input": "2+2"}));
    let guard = init(&server);
    let dataset = observe_runtime::get_dataset("interop").unwrap();
    let run_names = [
        "nightly",
        "nightly é/run \"quoted\"",
        "2026-12-03T10:00:00Z",
    ];
    let rust: Vec<String> = run_names
        .iter()
        .map(|name| {
            Experiment::new("interop")
                .run_name(*name)
                .run_blocking(&dataset, |item| -> Result<Value, String> {
                    Ok(item.input.clone())
                })
                .unwrap()
                .experiment_id
        })
        .collect();
    drop(guard);
    let cases: Vec<Value> = run_names
        .iter()
        .map(
            |name| json!({"project_id": "proj-test", "dataset_id": "ds-interop", "run_name": name}),
        )
        .collect();
    let python = peer.run(
        &server,
        &["experiment-ids"],
        &[],
        Some(&json!(cases).to_string()),
    );
    assert_eq!(python, json!(rust));

    #[derive(serde::Serialize)]
    struct Question {
        question: &'static str,
        n: Vec<f64>,
        tags: Vec<&'static str>,
    }
    let inputs = r#"["What is 2+2?", {"question": "élan", "n": [1.5, 100.0, 1e+20], "tags": ["a"]}, 42, [true, null]]"#;
    let items = [
        DatasetItem::local("What is 2+2?", ()),
        DatasetItem::local(
            Question {
                question: "élan",
                n: vec![1.5, 100.0, 1e20],
                tags: vec!["a"],
            },
            (),
        ),
        DatasetItem::local(42, ()),
        DatasetItem::local(json!([true, null]), ()),
    ];
    let python = peer.run(&server, &["item-ids"], &[], Some(inputs));
    let rust: Vec<&str> = items.iter().map(|item| item.id.as_str()).collect();
    assert_eq!(python, json!(rust));
}

#[test]
fn a_prompt_compiles_to_the_same_text_in_both_clients() {
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.put_prompt(json!({
        "name": "team/summarise", "version": 4, "labels": ["production"],
        "prompt": "Summarise {{ text }} in {{words}} words for {{audience}}; keep {{missing}}."
    }));
    let variables = json!({"text": "the report", "words": "50", "audience": "the board"});
    let python = peer.run(
        &server,
        &["prompt", "team/summarise", &variables.to_string()],
        &[],
        None,
    );
    let guard = init(&server);
    let prompt = get_prompt("team/summarise").fetch().unwrap();
    let rust = prompt.compile(&variables).unwrap();
    drop(guard);
    assert_eq!(python, json!({"version": 4, "compiled": rust}));
}

#[test]
fn media_references_are_the_same() {
    let Some(peer) = peer() else { return };
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    // Lengths and contents whose hashes hold `+` and `/` (made URL-safe in the id).
    let uris: Vec<String> = (1..40usize)
        .map(|n| {
            let bytes: Vec<u8> = (0..n * 37).map(|i| (i * 7 + n) as u8).collect();
            let kind = ["image/png", "audio/wav", "application/pdf"][n % 3];
            format!("data:{kind};base64,{}", support::base64_encode(&bytes))
        })
        .collect();
    let python = peer.run(
        &server,
        &["media-refs"],
        &[],
        Some(&json!(uris).to_string()),
    );
    let memory = observe_runtime::MemoryExporter::new();
    let guard = Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .expect("init");
    #[observe]
    fn attach(uris: &[String]) {
        let _ = uris;
    }
    attach(&uris);
    drop(guard);
    let input: Value = serde_json::from_str(memory.spans()[0].input.as_deref().unwrap()).unwrap();
    assert_eq!(input["uris"], python);
}
