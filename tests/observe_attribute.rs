//! What `#[observe]` records, as a user sees it arrive: the exact tree of observations (names,
//! types, parents), their input and output JSON, levels and status messages.
//!
//! One client is installed for the whole test binary, with the in-memory exporter. Each test runs
//! under its own manual root span, so it starts its own trace, and reads back only that trace.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::Duration;

use observe_runtime::{
    observe, FinishedSpan, FutureExt as _, Level, MemoryExporter, ObservationId, TraceContext,
    TraceId,
};

// ---------------------------------------------------------------------------------------------
// Harness

/// The exporter every test reads from; the client (and its guard) live until the process exits.
fn memory() -> &'static MemoryExporter {
    static MEMORY: OnceLock<MemoryExporter> = OnceLock::new();
    MEMORY.get_or_init(|| {
        let memory = MemoryExporter::new();
        let guard = observe_runtime::Config::default()
            .exporter(observe_runtime::Exporter::Memory(memory.clone()))
            .init()
            .expect("the test client starts");
        // Never dropped: other tests may still be running when one finishes.
        std::mem::forget(guard);
        memory
    })
}

/// Runs `body` under a fresh root span named `test` and returns its result and the rendered tree
/// of the trace it produced.
fn traced<R>(test: &'static str, body: impl FnOnce() -> R) -> (R, String) {
    let memory = memory();
    let root = observe_runtime::span(test).start();
    let trace_id = observe_runtime::current_trace_id().expect("the root span opened a trace");
    let result = body();
    drop(root);
    observe_runtime::flush().expect("flush");
    (result, render_trace(&memory.spans(), trace_id))
}

/// Same as [`traced`] for async code, on a multi-threaded tokio runtime.
fn traced_async<F: std::future::Future>(test: &'static str, body: F) -> (F::Output, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    traced(test, || runtime.block_on(body))
}

/// One line per observation, children indented under their parent and sorted by their text:
/// `name [Kind] in=<input> out=<output> level=<level> status=<message>` (the last four only when
/// set; the level only when not DEFAULT).
fn render_trace(spans: &[FinishedSpan], trace_id: TraceId) -> String {
    let spans: Vec<&FinishedSpan> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let roots: Vec<&FinishedSpan> = spans
        .iter()
        .copied()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "one root per test trace, got {}",
        roots.len()
    );
    let rendered = render_subtree(roots[0], &spans, 0);
    assert_eq!(
        rendered.lines().count(),
        spans.len(),
        "every observation of the trace hangs under the root:\n{rendered}"
    );
    rendered
}

fn render_subtree(span: &FinishedSpan, spans: &[&FinishedSpan], depth: usize) -> String {
    let mut line = format!("{}{} [{:?}]", "  ".repeat(depth), span.name, span.kind);
    if let Some(input) = &span.input {
        line.push_str(&format!(" in={input}"));
    }
    if let Some(output) = &span.output {
        line.push_str(&format!(" out={output}"));
    }
    if span.level != Level::Default {
        line.push_str(&format!(" level={:?}", span.level));
    }
    if let Some(status) = &span.status_message {
        line.push_str(&format!(" status={status}"));
    }
    line.push('\n');
    let mut below: Vec<String> = spans
        .iter()
        .filter(|kid| kid.parent_span_id == Some(span.span_id))
        .map(|kid| render_subtree(kid, spans, depth + 1))
        .collect();
    below.sort();
    line + &below.concat()
}

/// The expected tree, written with `|` as the left margin.
fn tree(text: &str) -> String {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix('|'))
        .map(|line| format!("{line}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Observed functions

#[derive(serde::Serialize)]
struct Query {
    text: String,
    k: usize,
}

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct DebugOnly {
    id: u8,
}

struct Opaque;

struct PanickingSerialize;

impl serde::Serialize for PanickingSerialize {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("this Serialize impl panics")
    }
}

#[derive(Debug)]
struct LookupError {
    key: String,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no document for {:?}", self.key)
    }
}

#[observe(as_type = "retriever")]
fn retrieve(query: &str, k: usize) -> Vec<String> {
    (0..k).map(|i| format!("{query}-{i}")).collect()
}

#[observe(as_type = "tool")]
fn lookup(key: &str) -> Result<u32, LookupError> {
    match key {
        "one" => Ok(1),
        _ => Err(LookupError {
            key: key.to_string(),
        }),
    }
}

#[observe(as_type = "chain")]
fn pipeline(question: String) -> usize {
    let documents = retrieve(&question, 2);
    let total: u32 = ["one", "two"].iter().filter_map(|k| lookup(k).ok()).sum();
    documents.len() + total as usize
}

#[observe]
async fn fetch(url: &str) -> String {
    tokio::time::sleep(Duration::from_millis(1)).await;
    format!("body of {url}")
}

#[observe(as_type = "agent")]
async fn agent(task: String) -> Result<String, String> {
    let page = fetch("a").await;
    let documents = retrieve(&task, 1);
    let (left, right) = tokio::join!(fetch("b"), fetch("c"));
    if task == "fail" {
        return Err(format!("gave up after {} pages", 3));
    }
    Ok(format!("{page}|{left}|{right}|{}", documents.len()))
}

#[observe]
fn summarise(pages: Vec<String>) -> Result<(), LookupError> {
    if pages.is_empty() {
        return Err(LookupError {
            key: "pages".to_string(),
        });
    }
    Ok(())
}

#[observe]
fn explode(reason: &str) -> u8 {
    panic!("exploded: {reason}")
}

#[observe]
fn wraps_explosion() -> u8 {
    explode("inner") + 1
}

/// Cleans up after `n`: called while a panic unwinds, from [`Cleanup`]'s drop.
#[observe]
fn after_unwind(n: u8) -> u8 {
    n + 1
}

/// Calls the observed [`after_unwind`] when it is dropped.
struct Cleanup(u8);

impl Drop for Cleanup {
    fn drop(&mut self) {
        std::hint::black_box(after_unwind(self.0));
        std::hint::black_box(futures::executor::block_on(after_unwind_async(self.0)));
        std::hint::black_box(after_unwind_items(self.0).sum::<u8>());
        // Polled once and dropped unfinished: cancelled.
        std::hint::black_box(futures::FutureExt::now_or_never(after_unwind_pending()));
        // One item taken of two: stopped early.
        std::hint::black_box(after_unwind_items(self.0 + 1).next());
    }
}

#[observe]
async fn after_unwind_pending() -> u8 {
    std::future::pending::<u8>().await
}

#[observe]
async fn after_unwind_async(n: u8) -> u8 {
    n + 2
}

#[observe]
fn after_unwind_items(n: u8) -> impl Iterator<Item = u8> {
    [n, n].into_iter()
}

#[observe]
fn explode_holding_cleanup() -> u8 {
    let _cleanup = Cleanup(1);
    explode("with a cleanup pending")
}

#[observe]
async fn explode_async(n: u8) -> u8 {
    tokio::task::yield_now().await;
    if n > 0 {
        panic!("async explosion {n}");
    }
    n
}

#[observe]
async fn slow(step: u32) -> u32 {
    tokio::time::sleep(Duration::from_secs(60)).await;
    step
}

#[observe]
fn answers_by_hand(question: &str) -> usize {
    observe_runtime::current_observation()
        .input(serde_json::json!({ "asked": question }))
        .output("by hand");
    question.len()
}

#[observe]
async fn asks_by_hand(question: String) -> usize {
    fetch("a").await;
    observe_runtime::current_observation().input("typed");
    question.len()
}

#[observe(capture_input = false)]
fn no_input(secret: &str) -> usize {
    secret.len()
}

#[observe(capture_output = false)]
fn no_output(text: &str) -> String {
    text.to_uppercase()
}

#[observe(capture_output = false)]
fn no_output_failing(text: &str) -> Result<String, String> {
    Err(format!("cannot handle {text}"))
}

#[observe(skip(api_key, retries))]
fn skip_some(api_key: &str, query: &str, retries: u8) -> usize {
    api_key.len() + query.len() + usize::from(retries)
}

#[observe(skip_all)]
fn skip_everything(api_key: &str) -> usize {
    api_key.len()
}

#[observe]
fn kinds_of_values(
    query: Query,
    debug: DebugOnly,
    opaque: Opaque,
    panicking: PanickingSerialize,
) -> DebugOnly {
    let _ = (query, opaque, panicking);
    debug
}

#[observe]
fn patterns((a, b): (u8, u8), Query { text, k }: Query) -> String {
    format!("{a}{b}{text}{k}")
}

struct Assistant {
    name: String,
}

impl Assistant {
    #[observe]
    fn greet(&self, who: &str) -> String {
        format!("{} greets {who}", self.name)
    }

    #[observe]
    fn rename(&mut self, name: &str) {
        self.name = name.to_string();
    }

    #[observe]
    async fn answer(&self, question: &str) -> usize {
        tokio::task::yield_now().await;
        self.name.len() + question.len()
    }

    #[observe]
    fn into_name(self) -> String {
        self.name
    }
}

#[async_trait::async_trait]
trait Tool {
    async fn call(&self, input: &str) -> Result<String, String>;
}

#[async_trait::async_trait]
impl Tool for Assistant {
    #[observe(as_type = "tool")]
    async fn call(&self, input: &str) -> Result<String, String> {
        let page = fetch(input).await;
        if input == "bad" {
            return Err(format!("refused {page}"));
        }
        Ok(page)
    }
}

#[observe(as_type = "agent")]
async fn fan_out(items: Vec<u32>) -> u32 {
    let context = TraceContext::current().expect("inside an observation");
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| tokio::spawn(square(item).in_context(context.clone())))
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await.expect("the task completes");
    }
    total
}

#[observe(as_type = "tool")]
async fn square(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n * n
}

#[observe]
fn returns_future(n: u32) -> impl std::future::Future<Output = Result<u32, String>> {
    async move {
        let page = fetch("future").await;
        if n == 0 {
            return Err("zero".to_string());
        }
        Ok(n + page.len() as u32)
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn sync_calls_nest_with_inputs_outputs_and_errors() {
    let (result, rendered) = traced("sync", || pipeline("rust".to_string()));
    assert_eq!(result, 3);
    assert_eq!(
        rendered,
        tree(
            r#"
            |sync [Span]
            |  pipeline [Chain] in={"question":"rust"} out=3
            |    lookup [Tool] in={"key":"one"} out=1
            |    lookup [Tool] in={"key":"two"} out="no document for \"two\"" level=Error status=no document for "two"
            |    retrieve [Retriever] in={"query":"rust","k":2} out=["rust-0","rust-1"]
            "#
        )
    );
}

#[test]
fn async_and_sync_calls_nest_across_awaits_and_join() {
    let (result, rendered) = traced_async("async", agent("plan".to_string()));
    assert_eq!(result.as_deref(), Ok("body of a|body of b|body of c|1"));
    assert_eq!(
        rendered,
        tree(
            r#"
            |async [Span]
            |  agent [Agent] in={"task":"plan"} out="body of a|body of b|body of c|1"
            |    fetch [Span] in={"url":"a"} out="body of a"
            |    fetch [Span] in={"url":"b"} out="body of b"
            |    fetch [Span] in={"url":"c"} out="body of c"
            |    retrieve [Retriever] in={"query":"plan","k":1} out=["plan-0"]
            "#
        )
    );
}

#[test]
fn an_err_marks_the_observation_failed() {
    let (result, rendered) = traced_async("async-error", agent("fail".to_string()));
    assert_eq!(result, Err("gave up after 3 pages".to_string()));
    assert_eq!(
        rendered,
        tree(
            r#"
            |async-error [Span]
            |  agent [Agent] in={"task":"fail"} out="gave up after 3 pages" level=Error status=gave up after 3 pages
            |    fetch [Span] in={"url":"a"} out="body of a"
            |    fetch [Span] in={"url":"b"} out="body of b"
            |    fetch [Span] in={"url":"c"} out="body of c"
            |    retrieve [Retriever] in={"query":"fail","k":1} out=["fail-0"]
            "#
        )
    );
}

#[test]
fn ok_unit_records_no_output_and_err_uses_display() {
    let ((ok, err), rendered) = traced("unit-result", || {
        (summarise(vec!["page".to_string()]), summarise(Vec::new()))
    });
    assert!(ok.is_ok());
    assert!(err.is_err());
    assert_eq!(
        rendered,
        tree(
            r#"
            |unit-result [Span]
            |  summarise [Span] in={"pages":["page"]}
            |  summarise [Span] in={"pages":[]} out="no document for \"pages\"" level=Error status=no document for "pages"
            "#
        )
    );
}

#[test]
fn a_panic_is_recorded_on_every_observation_it_unwinds_through_and_still_propagates() {
    let (outcome, rendered) = traced("panic", || catch_unwind(wraps_explosion));
    let payload = outcome.expect_err("the panic propagates");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("exploded: inner")
    );
    assert_eq!(
        rendered,
        tree(
            r#"
            |panic [Span]
            |  wraps_explosion [Span] level=Error status=exploded: inner
            |    explode [Span] in={"reason":"inner"} level=Error status=exploded: inner
            "#
        )
    );
}

#[test]
fn a_call_that_returns_while_a_panic_unwinds_is_not_an_error() {
    let (outcome, rendered) = traced("cleanup", || catch_unwind(explode_holding_cleanup));
    assert!(outcome.is_err(), "the panic propagates");
    assert_eq!(
        rendered,
        tree(
            r#"
            |cleanup [Span]
            |  explode_holding_cleanup [Span] level=Error status=exploded: with a cleanup pending
            |    after_unwind [Span] in={"n":1} out=2
            |    after_unwind_async [Span] in={"n":1} out=3
            |    after_unwind_items [Span] in={"n":1} out=[1,1]
            |    after_unwind_items [Span] in={"n":2} out=[2] level=Warning status=dropped before the end, after 1 item
            |    after_unwind_pending [Span] level=Warning status=cancelled
            |    explode [Span] in={"reason":"with a cleanup pending"} level=Error status=exploded: with a cleanup pending
            "#
        )
    );
}

#[test]
fn a_panic_in_an_async_fn_is_recorded_and_propagates() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (outcome, rendered) = traced("async-panic", || {
        catch_unwind(AssertUnwindSafe(|| runtime.block_on(explode_async(7))))
    });
    let payload = outcome.expect_err("the panic propagates");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("async explosion 7")
    );
    assert_eq!(
        rendered,
        tree(
            r#"
            |async-panic [Span]
            |  explode_async [Span] in={"n":7} level=Error status=async explosion 7
            "#
        )
    );
}

#[test]
fn a_future_dropped_before_it_completes_is_cancelled() {
    let (outcome, rendered) = traced_async("cancel", async {
        tokio::time::timeout(Duration::from_millis(20), slow(1)).await
    });
    assert!(outcome.is_err(), "the timeout fired");
    assert_eq!(
        rendered,
        tree(
            r#"
            |cancel [Span]
            |  slow [Span] in={"step":1} level=Warning status=cancelled
            "#
        )
    );
}

/// Runs an observed clean-up when dropped, as a connection or a stream guard would.
struct CleanUp;

impl Drop for CleanUp {
    fn drop(&mut self) {
        clean_up();
    }
}

#[observe]
fn clean_up() {}

#[observe]
async fn holds_a_resource() -> u32 {
    let _resource = CleanUp;
    slow(2).await
}

#[test]
fn a_cancelled_future_drops_its_locals_inside_its_observation() {
    // The locals of a cancelled `async fn` are dropped while its observation is still current,
    // so what their destructors record lands under it, not beside it.
    let (outcome, rendered) = traced_async("cancel-drop", async {
        tokio::time::timeout(Duration::from_millis(20), holds_a_resource()).await
    });
    assert!(outcome.is_err(), "the timeout fired");
    assert_eq!(
        rendered,
        tree(
            r#"
            |cancel-drop [Span]
            |  holds_a_resource [Span] level=Warning status=cancelled
            |    clean_up [Span]
            |    slow [Span] in={"step":2} level=Warning status=cancelled
            "#
        )
    );
}

#[test]
fn a_cancelled_in_context_future_drops_inside_the_context() {
    use observe_runtime::FutureExt;
    let (outcome, rendered) = traced_async("cancel-in-context", async {
        let context = observe_runtime::TraceContext::current().expect("the root");
        let future = async {
            let _resource = CleanUp;
            tokio::time::sleep(Duration::from_secs(60)).await;
        };
        // Polled once on another task, then dropped there, away from the root's thread stack.
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(20), future.in_context(context)).await
        })
        .await
        .expect("the task")
    });
    assert!(outcome.is_err(), "the timeout fired");
    assert_eq!(
        rendered,
        tree(
            r#"
            |cancel-in-context [Span]
            |  clean_up [Span]
            "#
        )
    );
}

#[test]
fn capture_input_and_capture_output_can_be_turned_off() {
    let (_, rendered) = traced("capture-off", || {
        no_input("hunter2");
        no_output("text");
        let _ = no_output_failing("this");
    });
    assert_eq!(
        rendered,
        tree(
            r#"
            |capture-off [Span]
            |  no_input [Span] out=7
            |  no_output [Span] in={"text":"text"}
            |  no_output_failing [Span] in={"text":"this"} level=Error status=cannot handle this
            "#
        )
    );
}

#[test]
fn an_input_or_output_the_body_sets_wins_over_the_captured_one() {
    let (_, rendered) = traced_async("by-hand", async {
        answers_by_hand("why");
        asks_by_hand("how".to_string()).await
    });
    assert_eq!(
        rendered,
        tree(
            r#"
            |by-hand [Span]
            |  answers_by_hand [Span] in={"asked":"why"} out="by hand"
            |  asks_by_hand [Span] in="typed" out=3
            |    fetch [Span] in={"url":"a"} out="body of a"
            "#
        )
    );
}

#[test]
fn skipped_arguments_are_left_out() {
    let (_, rendered) = traced("skip", || {
        skip_some("secret-key", "query", 2);
        skip_everything("secret-key");
    });
    assert_eq!(
        rendered,
        tree(
            r#"
            |skip [Span]
            |  skip_everything [Span] out=10
            |  skip_some [Span] in={"query":"query"} out=17
            "#
        )
    );
}

#[test]
fn values_are_captured_through_serialize_then_debug_then_a_placeholder() {
    let (_, rendered) = traced("values", || {
        kinds_of_values(
            Query {
                text: "q".to_string(),
                k: 2,
            },
            DebugOnly { id: 9 },
            Opaque,
            PanickingSerialize,
        )
    });
    assert_eq!(
        rendered,
        tree(
            r#"
            |values [Span]
            |  kinds_of_values [Span] in={"query":{"text":"q","k":2},"debug":"DebugOnly { id: 9 }","opaque":"<observe_attribute::Opaque>","panicking":"<observe_attribute::PanickingSerialize: its Serialize impl panicked>"} out="DebugOnly { id: 9 }"
            "#
        )
    );
}

#[test]
fn pattern_arguments_are_captured_by_the_names_they_bind() {
    let (result, rendered) = traced("patterns", || {
        patterns(
            (1, 2),
            Query {
                text: "t".to_string(),
                k: 3,
            },
        )
    });
    assert_eq!(result, "12t3");
    assert_eq!(
        rendered,
        tree(
            r#"
            |patterns [Span]
            |  patterns [Span] in={"a":1,"b":2,"text":"t","k":3} out="12t3"
            "#
        )
    );
}

#[test]
fn methods_leave_self_out() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (name, rendered) = traced("methods", || {
        let mut assistant = Assistant {
            name: "ada".to_string(),
        };
        assistant.greet("bob");
        assistant.rename("eve");
        runtime.block_on(assistant.answer("why"));
        assistant.into_name()
    });
    assert_eq!(name, "eve");
    assert_eq!(
        rendered,
        tree(
            r#"
            |methods [Span]
            |  answer [Span] in={"question":"why"} out=6
            |  greet [Span] in={"who":"bob"} out="ada greets bob"
            |  into_name [Span] out="eve"
            |  rename [Span] in={"name":"eve"}
            "#
        )
    );
}

#[test]
fn async_trait_methods_instrument_the_boxed_future() {
    let assistant = Assistant {
        name: "ada".to_string(),
    };
    let ((good, bad), rendered) = traced_async("async-trait", async {
        let tool: &(dyn Tool + Sync) = &assistant;
        (tool.call("good").await, tool.call("bad").await)
    });
    assert_eq!(good.as_deref(), Ok("body of good"));
    assert_eq!(bad, Err("refused body of bad".to_string()));
    assert_eq!(
        rendered,
        tree(
            r#"
            |async-trait [Span]
            |  call [Tool] in={"input":"bad"} out="refused body of bad" level=Error status=refused body of bad
            |    fetch [Span] in={"url":"bad"} out="body of bad"
            |  call [Tool] in={"input":"good"} out="body of good"
            |    fetch [Span] in={"url":"good"} out="body of good"
            "#
        )
    );
}

#[test]
fn a_returned_async_block_is_instrumented() {
    let ((ok, err), rendered) = traced_async("returned-future", async {
        let pending = returns_future(1);
        (pending.await, returns_future(0).await)
    });
    assert_eq!(ok, Ok(1 + "body of future".len() as u32));
    assert_eq!(err, Err("zero".to_string()));
    assert_eq!(
        rendered,
        tree(
            r#"
            |returned-future [Span]
            |  returns_future [Span] in={"n":0} out="zero" level=Error status=zero
            |    fetch [Span] in={"url":"future"} out="body of future"
            |  returns_future [Span] in={"n":1} out=15
            |    fetch [Span] in={"url":"future"} out="body of future"
            "#
        )
    );
}

#[test]
fn spawned_tasks_keep_their_parent_through_in_context() {
    let (total, rendered) = traced_async("spawn", fan_out(vec![1, 2, 3]));
    assert_eq!(total, 14);
    assert_eq!(
        rendered,
        tree(
            r#"
            |spawn [Span]
            |  fan_out [Agent] in={"items":[1,2,3]} out=14
            |    square [Tool] in={"n":1} out=1
            |    square [Tool] in={"n":2} out=4
            |    square [Tool] in={"n":3} out=9
            "#
        )
    );
}

#[test]
fn observations_know_their_place_while_running() {
    #[observe(name = "outer-step")]
    fn outer() -> (Option<ObservationId>, Option<ObservationId>) {
        let me = observe_runtime::current_observation_id();
        (me, inner())
    }

    #[observe(name = "inner-step")]
    fn inner() -> Option<ObservationId> {
        observe_runtime::current_observation_id()
    }

    let ((outer_id, inner_id), _) = traced("ids", outer);
    let spans = memory().spans();
    let find = |id: Option<ObservationId>| {
        spans
            .iter()
            .find(|s| Some(s.span_id) == id)
            .expect("the observation was exported")
    };
    let outer_span = find(outer_id);
    let inner_span = find(inner_id);
    assert_eq!(outer_span.name, "outer-step");
    assert_eq!(inner_span.name, "inner-step");
    assert_eq!(inner_span.parent_span_id, Some(outer_span.span_id));
    assert!(outer_span.start_unix_nanos <= inner_span.start_unix_nanos);
    assert!(inner_span.end_unix_nanos <= outer_span.end_unix_nanos);
}

#[test]
fn a_returned_future_dropped_before_its_first_poll_is_cancelled() {
    let (_, rendered) = traced("dropped-unpolled", || drop(returns_future(5)));
    assert_eq!(
        rendered,
        tree(
            r#"
            |dropped-unpolled [Span]
            |  returns_future [Span] in={"n":5} level=Warning status=cancelled
            "#
        )
    );
}
