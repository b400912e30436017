//! Prompt management against the fake Langfuse server: fetching text and chat prompts by label,
//! version and folder name, the errors a user sees, the cache (one request within the TTL, a
//! stale prompt served at once with exactly one refresh, also under 16 threads, while the server
//! fails or hangs, eviction on 404), fallbacks, compiling, creating and relabelling, and the link
//! of generations to a prompt as it arrives on the wire; and `trace_url`, which shares the REST
//! client.
//!
//! The client is global to the process: every test holds [`support::serial`] and starts its own
//! client against its own server.

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use observe_runtime::{
    create_prompt, current_observation, current_trace, get_prompt, observe, set_prompt_labels,
    tracing_layer, ChatMessage, Config, FlushGuard, Prompt, PromptError, TraceContext,
};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt as _;

use support::prompts::{not_found_with_label, BOTH_VERSION_AND_LABEL};
use support::{by_name, child_mode, serial, FakeLangfuse, Fault};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
const WAIT: Duration = Duration::from_secs(10);

fn config(server: &FakeLangfuse) -> Config {
    support::sdk::config_for(server)
}

fn start() -> (FakeLangfuse, FlushGuard) {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    (server, guard)
}

/// A text prompt `name` at `version` with `labels`.
fn text_prompt(name: &str, version: i64, text: &str, labels: &[&str]) -> Value {
    json!({"name": name, "version": version, "prompt": text, "labels": labels,
           "config": {"model": "gpt-4o", "temperature": 0.2}, "tags": ["team-a"]})
}

fn chat_prompt(name: &str, version: i64, labels: &[&str]) -> Value {
    json!({"name": name, "version": version, "labels": labels, "prompt": [
        {"role": "system", "content": "You are {{ persona }}.", "type": "chatmessage"},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}}"}
    ]})
}

/// The GET requests for prompt `name` the server received, as `path?query`.
fn fetches(server: &FakeLangfuse, name: &str) -> Vec<String> {
    server
        .prompt_requests()
        .into_iter()
        .filter(|r| r.is_prompt_fetch_of(name))
        .map(|r| r.target)
        .collect()
}

/// Waits until `count` fetches of `name` have been answered.
fn wait_for_fetches(server: &FakeLangfuse, name: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while server.prompt_fetch_count(name) < count && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    server.wait_for_prompt_requests(server.prompt_request_count(), WAIT);
}

/// Waits until `check` holds for the prompt served now (a background refresh landed).
fn wait_for_served(name: &str, check: impl Fn(&Prompt) -> bool) -> Prompt {
    let deadline = Instant::now() + WAIT;
    loop {
        let prompt = get_prompt(name).fetch().expect("served from the cache");
        if check(&prompt) || Instant::now() >= deadline {
            return prompt;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn text_and_chat_prompts_by_label_version_and_folder_name() {
    let _serial = serial();
    let (server, _guard) = start();
    server.put_prompt(text_prompt("team/summarise", 1, "Old {{text}}", &[]));
    server.put_prompt(text_prompt(
        "team/summarise",
        2,
        "Summarise {{ text }} in {{words}} words.",
        &["production"],
    ));
    server.put_prompt(text_prompt("team/summarise", 3, "Draft", &["staging"]));
    server.put_prompt(chat_prompt("support/answer", 1, &["production"]));

    let production = get_prompt("team/summarise").fetch().unwrap();
    assert_eq!(
        (production.name(), production.version(), production.text()),
        (
            "team/summarise",
            2,
            Some("Summarise {{ text }} in {{words}} words.")
        )
    );
    assert_eq!(production.labels(), ["production"]);
    assert_eq!(production.tags(), ["team-a"]);
    assert_eq!(
        production.config(),
        &json!({"model": "gpt-4o", "temperature": 0.2})
    );
    assert!(!production.is_fallback() && !production.is_chat());
    assert_eq!(production.variables(), ["text", "words"]);
    assert_eq!(
        production
            .compile(&json!({"text": "the report", "words": 50}))
            .unwrap(),
        "Summarise the report in 50 words."
    );
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct ModelConfig {
        model: String,
        temperature: f64,
    }
    assert_eq!(
        production.config_as::<ModelConfig>().unwrap(),
        ModelConfig {
            model: "gpt-4o".into(),
            temperature: 0.2
        }
    );
    assert_eq!(
        production
            .config_as::<Vec<String>>()
            .unwrap_err()
            .to_string(),
        "prompt \"team/summarise\" version 2: the config does not have the type asked for: \
         invalid type: map, expected a sequence"
    );

    let staging = get_prompt("team/summarise")
        .label("staging")
        .fetch()
        .unwrap();
    assert_eq!(staging.version(), 3);
    let latest = get_prompt("team/summarise")
        .label("latest")
        .fetch()
        .unwrap();
    assert_eq!(
        (latest.version(), latest.labels()),
        (3, &["staging".to_string(), "latest".to_string()][..])
    );
    let first = get_prompt("team/summarise").version(1).fetch().unwrap();
    assert_eq!(first.text(), Some("Old {{text}}"));

    let chat = get_prompt("support/answer").fetch().unwrap();
    assert!(chat.is_chat());
    let messages = chat.messages().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        (messages[0].role.as_str(), messages[0].content.as_str()),
        ("system", "You are {{ persona }}.")
    );
    assert_eq!(messages[1].placeholder_name(), Some("history"));
    assert_eq!(chat.variables(), ["persona", "question"]);

    assert_eq!(
        fetches(&server, "team/summarise"),
        [
            "/api/public/v2/prompts/team%2Fsummarise?label=production",
            "/api/public/v2/prompts/team%2Fsummarise?label=staging",
            "/api/public/v2/prompts/team%2Fsummarise?label=latest",
            "/api/public/v2/prompts/team%2Fsummarise?version=1",
        ]
    );
    let request = &server.prompt_requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(support::basic_auth(PUBLIC_KEY, SECRET_KEY).as_str())
    );
    assert_eq!(request.header("x-langfuse-sdk-name"), Some("rust"));
    assert_eq!(request.header("x-langfuse-public-key"), Some(PUBLIC_KEY));
}

#[test]
fn chat_prompts_compile_variables_and_placeholders() {
    let _serial = serial();
    let (server, _guard) = start();
    server.put_prompt(chat_prompt("support/answer", 1, &["production"]));
    let chat = get_prompt("support/answer").fetch().unwrap();
    let history = json!({"history": [
        {"role": "user", "content": "Hi {{persona}}"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function"}]}
    ]});
    let messages = chat
        .compile_chat(
            &json!({"persona": "a librarian", "question": "Where is {{x}}?"}),
            &history,
        )
        .unwrap();
    assert_eq!(
        serde_json::to_value(&messages).unwrap(),
        json!([
            {"role": "system", "content": "You are a librarian."},
            // Placeholder messages are inserted as given: no variables filled inside them.
            {"role": "user", "content": "Hi {{persona}}"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function"}]},
            // A value holding braces is not filled again.
            {"role": "user", "content": "Where is {{x}}?"}
        ])
    );
    // An empty list leaves the placeholder out; a variable with no value stays as written.
    let short = chat
        .compile_chat(&json!({"persona": "terse"}), &json!({"history": []}))
        .unwrap();
    assert_eq!(
        serde_json::to_value(&short).unwrap(),
        json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "{{question}}"}])
    );
    assert_eq!(
        chat.compile_chat(&json!({}), &json!({}))
            .unwrap_err()
            .to_string(),
        "prompt \"support/answer\": the placeholder \"history\" was given no messages; pass them \
         under that name in the placeholders of compile_chat (an empty list leaves it out)"
    );
    assert_eq!(
        chat.compile_chat(&json!({}), &json!({"history": "hi"}))
            .unwrap_err()
            .to_string(),
        "prompt \"support/answer\": the messages for the placeholder \"history\" are not a list of \
         chat messages: expected a list of messages, got \"hi\""
    );
    assert_eq!(
        chat.compile(&json!({})).unwrap_err().to_string(),
        "prompt \"support/answer\" is a chat prompt, and this call needs a text prompt; use \
         compile_chat"
    );
}

#[test]
fn errors_name_the_prompt_what_was_asked_and_the_answer() {
    let _serial = serial();
    let (server, _guard) = start();
    server.put_prompt(text_prompt("summarise", 1, "x", &["production"]));

    let missing = get_prompt("summarise")
        .label("staging")
        .fetch()
        .unwrap_err();
    assert!(matches!(missing, PromptError::NotFound { .. }));
    assert_eq!(
        missing.to_string(),
        format!(
            "prompt \"summarise\" (label \"staging\") was not found: Langfuse answered HTTP 404 \
             {:?}; check the name (with its folders), the label or the version in Langfuse's \
             prompt management",
            not_found_with_label("summarise", "staging")
        )
    );

    let both = get_prompt("summarise")
        .label("production")
        .version(1)
        .fetch()
        .unwrap_err();
    assert_eq!(
        both.to_string(),
        "prompt \"summarise\": both label \"production\" and version 1 were given, and Langfuse \
         refuses that; ask for one of them"
    );
    // Refused before sending: the server would have answered 400.
    assert_eq!(fetches(&server, "summarise").len(), 1);
    server.script_prompts([Fault::bad_request(BOTH_VERSION_AND_LABEL)]);
    let refused = get_prompt("summarise").version(9).fetch().unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "prompt \"summarise\" (version 9): GET {}/api/public/v2/prompts/summarise?version=9 \
             answered HTTP 400: \"Cannot specify both version and label\"",
            server.base_url()
        )
    );

    server.set_default_prompt_fault(Some(Fault::respond(
        401,
        r#"{"message":"Invalid credentials. Confirm that you've configured the correct host."}"#,
    )));
    let unauthorized = get_prompt("other").fetch().unwrap_err().to_string();
    assert!(
        unauthorized.starts_with(&format!(
            "prompt \"other\" (label \"production\"): GET {base}/api/public/v2/prompts/other?label=production \
             answered HTTP 401: \"Invalid credentials. Confirm that you've configured the correct host.\". \
             Langfuse rejected the credentials with HTTP 401",
            base = server.base_url()
        )),
        "{unauthorized}"
    );
    assert!(!unauthorized.contains(SECRET_KEY), "{unauthorized}");
    // A 401 is not retried.
    assert_eq!(fetches(&server, "other").len(), 1);
}

#[test]
fn without_keys_the_error_says_what_to_configure_and_the_fallback_is_used() {
    let _serial = serial();
    let guard = Config::default()
        .exporter(observe_runtime::Exporter::Memory(
            observe_runtime::MemoryExporter::new(),
        ))
        .init()
        .expect("init");
    assert_eq!(
        get_prompt("summarise").fetch().unwrap_err().to_string(),
        "prompt \"summarise\" (label \"production\"): no Langfuse API is configured: call \
         observe_runtime::init() with LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and \
         LANGFUSE_BASE_URL set (or the Config builder's keys) first"
    );
    let fallback = get_prompt("summarise")
        .fallback_text("Summarise {{text}}")
        .fetch()
        .unwrap();
    assert!(fallback.is_fallback());
    assert_eq!(
        (fallback.version(), fallback.text()),
        (0, Some("Summarise {{text}}"))
    );
    drop(guard);
}

#[test]
fn within_the_ttl_one_request_serves_every_call() {
    let _serial = serial();
    let (server, _guard) = start();
    server.put_prompt(text_prompt("summarise", 1, "x", &["production"]));
    for _ in 0..50 {
        assert_eq!(get_prompt("summarise").fetch().unwrap().version(), 1);
    }
    // Label and version are separate entries; `latest` is a label like any other.
    assert_eq!(
        get_prompt("summarise")
            .version(1)
            .fetch()
            .unwrap()
            .version(),
        1
    );
    assert_eq!(
        get_prompt("summarise")
            .label("latest")
            .fetch()
            .unwrap()
            .version(),
        1
    );
    assert_eq!(
        get_prompt("summarise")
            .version(1)
            .fetch()
            .unwrap()
            .version(),
        1
    );
    assert_eq!(
        fetches(&server, "summarise"),
        [
            "/api/public/v2/prompts/summarise?label=production",
            "/api/public/v2/prompts/summarise?version=1",
            "/api/public/v2/prompts/summarise?label=latest",
        ]
    );
    // A zero TTL asks every time and caches nothing.
    for _ in 0..3 {
        get_prompt("summarise")
            .cache_ttl(Duration::ZERO)
            .fetch()
            .unwrap();
    }
    assert_eq!(fetches(&server, "summarise").len(), 6);
}

#[test]
fn a_stale_prompt_comes_back_at_once_and_sixteen_threads_send_one_refresh() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let _guard = config(&server)
        .prompt_cache_ttl(Duration::from_millis(200))
        .init()
        .unwrap();
    server.put_prompt(text_prompt("summarise", 1, "v1", &["production"]));
    assert_eq!(get_prompt("summarise").fetch().unwrap().version(), 1);
    server.put_prompt(text_prompt("summarise", 2, "v2", &["production"]));
    // The refresh hangs until released: a caller that waited for it could not return.
    server.script_prompts([Fault::Delay(Duration::from_secs(3))]);
    thread::sleep(Duration::from_millis(300));

    let barrier = Arc::new(Barrier::new(16));
    let started = Instant::now();
    let served: Vec<u32> = (0..16)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                get_prompt("summarise").fetch().unwrap().version()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        served, [1; 16],
        "every caller gets the stale version at once"
    );
    // The refresh answers after 3 s; the callers did not wait for it (a bound with a wide margin).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let refreshed = wait_for_served("summarise", |p| p.version() == 2);
    assert_eq!(refreshed.text(), Some("v2"));
    assert_eq!(
        fetches(&server, "summarise").len(),
        2,
        "one fetch, then exactly one refresh"
    );
}

#[test]
fn while_the_server_fails_or_hangs_the_stale_prompt_keeps_being_served() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let _guard = config(&server)
        .timeout(Duration::from_millis(300))
        .prompt_cache_ttl(Duration::from_millis(100))
        .init()
        .unwrap();
    server.put_prompt(text_prompt("summarise", 1, "v1", &["production"]));
    get_prompt("summarise").fetch().unwrap();

    for fault in [Fault::service_unavailable(), Fault::Hang] {
        server.set_default_prompt_fault(Some(fault));
        let before = server.prompt_request_count();
        thread::sleep(Duration::from_millis(150));
        for _ in 0..20 {
            assert_eq!(get_prompt("summarise").fetch().unwrap().text(), Some("v1"));
        }
        // One refresh, its three attempts, however many calls.
        let deadline = Instant::now() + WAIT;
        while server.prompt_request_count() < before + 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..20 {
            assert_eq!(get_prompt("summarise").fetch().unwrap().text(), Some("v1"));
        }
        assert_eq!(server.prompt_request_count(), before + 3);
    }
    // A cold miss meanwhile falls back.
    let fallback = get_prompt("other")
        .fallback_chat(vec![ChatMessage::new("system", "Be brief.")])
        .fetch()
        .unwrap();
    assert!(fallback.is_fallback());
    assert_eq!(fallback.messages().unwrap()[0].content, "Be brief.");
    server.set_default_prompt_fault(None);
}

#[test]
fn a_refresh_answered_404_evicts_the_entry() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let _guard = config(&server)
        .prompt_cache_ttl(Duration::from_millis(100))
        .init()
        .unwrap();
    server.put_prompt(text_prompt("summarise", 1, "v1", &["staging"]));
    get_prompt("summarise").label("staging").fetch().unwrap();
    // The label moves away in Langfuse.
    server.put_prompt(text_prompt("summarise", 2, "v2", &["production"]));
    server.put_prompt(text_prompt("summarise", 1, "v1", &[]));
    thread::sleep(Duration::from_millis(150));
    assert_eq!(
        get_prompt("summarise")
            .label("staging")
            .fetch()
            .unwrap()
            .version(),
        1
    );
    wait_for_fetches(&server, "summarise", 2);
    let error = get_prompt("summarise")
        .label("staging")
        .fetch()
        .unwrap_err();
    assert!(matches!(error, PromptError::NotFound { .. }), "{error}");
    assert_eq!(fetches(&server, "summarise").len(), 3);
}

#[test]
fn create_and_relabel_invalidate_the_cache() {
    let _serial = serial();
    let (server, _guard) = start();
    let created = create_prompt("team/summarise")
        .text("Summarise {{text}}")
        .config(json!({"model": "gpt-4o"}))
        .labels(["production"])
        .tags(["team-a"])
        .commit_message("first")
        .send()
        .unwrap();
    assert_eq!(
        (
            created.version(),
            created.labels(),
            created.commit_message()
        ),
        (
            1,
            &["production".to_string(), "latest".to_string()][..],
            Some("first")
        )
    );
    assert_eq!(get_prompt("team/summarise").fetch().unwrap().version(), 1);
    let second = create_prompt("team/summarise")
        .chat(vec![ChatMessage::new("system", "x")])
        .send()
        .unwrap_err();
    assert!(
        second
            .to_string()
            .starts_with("prompt \"team/summarise\" (a new version): POST"),
        "{second}"
    );
    create_prompt("team/summarise")
        .text("v2 {{text}}")
        .send()
        .unwrap();
    // Created without labels: production stays on version 1.
    assert_eq!(get_prompt("team/summarise").fetch().unwrap().version(), 1);
    let promoted = set_prompt_labels("team/summarise", 2, ["production"]).unwrap();
    assert_eq!(promoted.version(), 2);
    assert!(promoted.labels().contains(&"production".to_string()));
    assert_eq!(
        get_prompt("team/summarise").fetch().unwrap().text(),
        Some("v2 {{text}}")
    );
    assert_eq!(
        set_prompt_labels("team/summarise", 2, ["latest"])
            .unwrap_err()
            .to_string(),
        "prompt \"team/summarise\": the label \"latest\" is reserved: Langfuse moves it to the \
         newest version itself"
    );
    let patch = server
        .prompt_requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.target,
        "/api/public/v2/prompts/team%2Fsummarise/versions/2"
    );
    assert_eq!(patch.json, Some(json!({"newLabels": ["production"]})));
    // Every get after a write asked the server again.
    assert_eq!(fetches(&server, "team/summarise").len(), 3);
}

#[test]
fn prompts_named_at_start_are_prefetched() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.put_prompt(text_prompt("summarise", 4, "v4", &["production"]));
    let _guard = config(&server)
        .prefetch_prompts(["summarise"])
        .init()
        .unwrap();
    wait_for_fetches(&server, "summarise", 1);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(get_prompt("summarise").fetch().unwrap().version(), 4);
    assert_eq!(fetches(&server, "summarise").len(), 1);
}

#[test]
fn a_blocking_fetch_works_inside_a_current_thread_runtime_and_async_anywhere() {
    let _serial = serial();
    let (server, _guard) = start();
    server.put_prompt(text_prompt("summarise", 1, "v1", &["production"]));
    server.put_prompt(text_prompt("other", 3, "v3", &["production"]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let version = runtime.block_on(async {
        tokio::task::yield_now().await;
        get_prompt("summarise").fetch().unwrap().version()
    });
    assert_eq!(version, 1);
    // No tokio runtime at all on this executor.
    let other = futures::executor::block_on(get_prompt("other").fetch_async()).unwrap();
    assert_eq!(other.version(), 3);
}

#[observe(as_type = "generation")]
fn generate(prompt: &Prompt) -> String {
    current_observation().link_prompt(prompt).model("gpt-4o");
    "answer".into()
}

#[observe(as_type = "generation")]
fn unlinked_generation() -> String {
    "answer".into()
}

#[test]
fn generations_carry_the_link_as_an_integer_version_and_fallbacks_never() {
    let _serial = serial();
    let (server, guard) = start();
    server.put_prompt(text_prompt("summarise", 7, "v7", &["production"]));
    let prompt = get_prompt("summarise").fetch().unwrap();
    let fallback = get_prompt("missing").fallback_text("x").fetch().unwrap();
    #[observe]
    fn request(prompt: &Prompt, fallback: &Prompt) {
        generate(prompt);
        generate(fallback);
    }
    request(&prompt, &fallback);
    guard.flush().unwrap();
    let spans = server.wait_for_spans(3, WAIT);
    let generations: Vec<_> = spans.iter().filter(|s| s.name() == "generate").collect();
    assert_eq!(generations.len(), 2);
    let linked: Vec<(Option<&str>, Option<i64>)> = generations
        .iter()
        .map(|s| {
            (
                s.str_attr("langfuse.observation.prompt.name"),
                s.int_attr("langfuse.observation.prompt.version"),
            )
        })
        .collect();
    assert_eq!(linked, [(Some("summarise"), Some(7)), (None, None)]);
}

#[test]
fn a_trace_wide_link_reaches_child_threads_bridged_spans_and_baggage() {
    let _serial = serial();
    let (server, guard) = start();
    server.put_prompt(chat_prompt("agent/system", 5, &["production"]));
    let prompt = get_prompt("agent/system").fetch().unwrap();
    let subscriber = tracing_subscriber::registry().with(tracing_layer());
    let baggage = tracing::subscriber::with_default(subscriber, || {
        #[observe(as_type = "agent")]
        fn agent(prompt: &Prompt) -> String {
            current_trace().link_prompt(prompt);
            let context = TraceContext::current();
            thread::spawn(move || {
                let _attached = context.as_ref().map(TraceContext::attach);
                unlinked_generation();
            })
            .join()
            .unwrap();
            let chat = tracing::info_span!("chat", gen_ai.request.model = "gpt-4o");
            chat.in_scope(|| {});
            // A span that is not a generation never carries a link.
            tracing::info_span!("tool").in_scope(|| {});
            TraceContext::current().unwrap().to_baggage()
        }
        agent(&prompt)
    });
    assert_eq!(
        baggage,
        "langfuse_prompt_name=agent%2Fsystem,langfuse_prompt_version=5"
    );
    guard.flush().unwrap();
    let spans = server.wait_for_spans(4, WAIT);
    let link = |name: &str| {
        let span = by_name(&spans, name);
        (
            span.str_attr("langfuse.observation.prompt.name")
                .map(str::to_string),
            span.int_attr("langfuse.observation.prompt.version"),
        )
    };
    let linked = (Some("agent/system".to_string()), Some(5));
    assert_eq!(link("unlinked_generation"), linked);
    assert_eq!(link("chat"), linked);
    assert_eq!(link("tool"), (None, None));
    assert_eq!(link("agent"), (None, None));

    // Another service adopts the link from baggage.
    let incoming =
        TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap()
            .with_baggage(&baggage);
    {
        let _attached = incoming.attach();
        unlinked_generation();
    }
    guard.flush().unwrap();
    let spans = server.wait_for_spans(5, WAIT);
    let remote = spans
        .iter()
        .find(|s| {
            s.name() == "unlinked_generation" && s.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
        })
        .expect("the generation of the other service");
    assert_eq!(
        remote.int_attr("langfuse.observation.prompt.version"),
        Some(5)
    );
}

#[test]
fn a_failing_refresh_is_reported_once_not_per_call() {
    const BASE_URL: &str = "OBSERVE_TEST_PROMPT_BASE_URL";
    if child_mode().as_deref() == Some("refresh") {
        let base_url = std::env::var(BASE_URL).expect("the server's URL");
        let _guard = Config::default()
            .public_key(PUBLIC_KEY)
            .secret_key(SECRET_KEY)
            .base_url(base_url)
            .prompt_cache_ttl(Duration::from_millis(100))
            .init()
            .unwrap();
        assert_eq!(get_prompt("summarise").fetch().unwrap().version(), 1);
        // Two rounds: each claims one refresh, whose three attempts all fail (backoffs of at
        // most 0.75 s and 1.5 s), while every call gets the cached version.
        for _ in 0..2 {
            thread::sleep(Duration::from_millis(150));
            for _ in 0..20 {
                assert_eq!(get_prompt("summarise").fetch().unwrap().version(), 1);
            }
            thread::sleep(Duration::from_secs(4));
        }
        return;
    }
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.put_prompt(text_prompt("summarise", 1, "v1", &["production"]));
    server.script_prompts([Fault::Delay(Duration::ZERO)]);
    server.set_default_prompt_fault(Some(Fault::service_unavailable()));
    let output = child_test!(
        "refresh",
        &[(BASE_URL, &server.base_url())],
        Duration::from_secs(60),
    );
    output.assert_success();
    let reports: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.contains("could not be refreshed"))
        .collect();
    assert_eq!(
        reports,
        [format!(
            "[langfuse] warning: prompt \"summarise\" (label \"production\") could not be \
             refreshed; the cached version keeps being served and the refresh is retried (said \
             once until it succeeds): GET {}/api/public/v2/prompts/summarise?label=production \
             answered HTTP 503: \"Service Unavailable\"",
            server.base_url()
        )]
    );
    assert_eq!(fetches(&server, "summarise").len(), 1 + 3 + 3);
}

#[test]
fn trace_urls_ask_for_the_project_once() {
    let _serial = serial();
    let (server, _guard) = start();
    let id: observe_runtime::TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
    let expected = format!(
        "{}/project/{}/traces/4bf92f3577b34da6a3ce929d0e0e4736",
        server.base_url(),
        support::server::PROJECT_ID
    );
    assert_eq!(observe_runtime::trace_url(id), Some(expected.clone()));
    assert_eq!(observe_runtime::trace_url(id), Some(expected));
    let asked = server
        .requests()
        .iter()
        .filter(|r| r.path == support::server::PROJECTS_PATH)
        .count();
    assert_eq!(asked, 1);
}
