//! Every option of the attribute.
#![deny(warnings)]

use observe_runtime::observe;

#[observe(name = "custom-name")]
fn named() -> u8 {
    1
}

#[observe(as_type = "span")]
fn span() {}
#[observe(as_type = "generation")]
fn generation() {}
#[observe(as_type = "event")]
fn event() {}
#[observe(as_type = "agent")]
fn agent() {}
#[observe(as_type = "tool")]
fn tool() {}
#[observe(as_type = "chain")]
fn chain() {}
#[observe(as_type = "retriever")]
fn retriever() {}
#[observe(as_type = "evaluator")]
fn evaluator() {}
#[observe(as_type = "embedding")]
fn embedding() {}
#[observe(as_type = "guardrail")]
fn guardrail() {}

#[observe(capture_input = false)]
fn no_input(secret: &str) -> usize {
    secret.len()
}

#[observe(capture_output = false)]
fn no_output(text: &str) -> String {
    text.to_uppercase()
}

#[observe(capture_input = true, capture_output = true)]
fn both(text: &str) -> String {
    text.to_lowercase()
}

#[observe(skip(api_key, client))]
fn skipped(api_key: &str, client: u8, query: &str) -> usize {
    api_key.len() + usize::from(client) + query.len()
}

#[observe(skip_all)]
fn skip_everything(api_key: &str) -> usize {
    api_key.len()
}

#[observe(skip(r#type))]
fn raw_identifiers(r#type: &str, r#match: u8) -> u8 {
    r#type.len() as u8 + r#match
}

mod sdk {
    pub use observe_runtime as runtime;
}

#[observe(crate = crate::sdk::runtime)]
fn renamed_crate(n: u8) -> u8 {
    n
}

#[observe(crate = ::observe_runtime)]
fn absolute_crate_path(n: u8) -> u8 {
    n
}

#[observe(
    name = "all-options",
    as_type = "tool",
    capture_input = true,
    capture_output = true,
    skip(token),
    crate = ::observe_runtime,
)]
fn all_options(token: &str, query: &str) -> usize {
    token.len() + query.len()
}

fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    named();
    span();
    generation();
    event();
    agent();
    tool();
    chain();
    retriever();
    evaluator();
    embedding();
    guardrail();
    no_input("secret");
    no_output("text");
    both("TEXT");
    skipped("key", 1, "q");
    skip_everything("key");
    raw_identifiers("ab", 1);
    renamed_crate(1);
    absolute_crate_path(1);
    all_options("token", "q");

    guard.flush().unwrap();
    let spans = memory.spans();
    let summary: Vec<(String, String, Option<String>, Option<String>)> = spans
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                format!("{:?}", s.kind),
                s.input.clone(),
                s.output.clone(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, Option<&str>, Option<&str>)> = vec![
        ("custom-name", "Span", None, Some("1")),
        ("span", "Span", None, None),
        ("generation", "Generation", None, None),
        ("event", "Event", None, None),
        ("agent", "Agent", None, None),
        ("tool", "Tool", None, None),
        ("chain", "Chain", None, None),
        ("retriever", "Retriever", None, None),
        ("evaluator", "Evaluator", None, None),
        ("embedding", "Embedding", None, None),
        ("guardrail", "Guardrail", None, None),
        ("no_input", "Span", None, Some("6")),
        ("no_output", "Span", Some(r#"{"text":"text"}"#), None),
        (
            "both",
            "Span",
            Some(r#"{"text":"TEXT"}"#),
            Some(r#""text""#),
        ),
        ("skipped", "Span", Some(r#"{"query":"q"}"#), Some("5")),
        ("skip_everything", "Span", None, Some("3")),
        ("raw_identifiers", "Span", Some(r#"{"match":1}"#), Some("3")),
        ("renamed_crate", "Span", Some(r#"{"n":1}"#), Some("1")),
        ("absolute_crate_path", "Span", Some(r#"{"n":1}"#), Some("1")),
        ("all-options", "Tool", Some(r#"{"query":"q"}"#), Some("6")),
    ];
    let expected: Vec<(String, String, Option<String>, Option<String>)> = expected
        .into_iter()
        .map(|(name, kind, input, output)| {
            (
                name.to_string(),
                kind.to_string(),
                input.map(str::to_string),
                output.map(str::to_string),
            )
        })
        .collect();
    assert_eq!(summary, expected);
}
