//! Testing your own application: [`capture`] runs code and returns what it recorded, with no
//! `init`, no exporter and no network, and with tests running in parallel in one process (as
//! `cargo test` runs them): each capture sees exactly the traces started inside it.
//!
//! ```
//! use observe_runtime::{observe, testing};
//!
//! #[observe(as_type = "retriever")]
//! fn retrieve(query: &str) -> Vec<String> {
//!     vec![format!("doc about {query}")]
//! }
//!
//! #[observe(as_type = "agent")]
//! fn agent(question: &str) -> usize {
//!     retrieve(question).len()
//! }
//!
//! let run = testing::capture(|| agent("rust"));
//! assert_eq!(run.value, 1);
//! assert_eq!(run.tree(), "agent [agent]\n  retrieve [retriever]\n");
//! assert_eq!(run.input("retrieve"), serde_json::json!({"query": "rust"}));
//! assert_eq!(run.output("retrieve"), serde_json::json!(["doc about rust"]));
//! ```
//!
//! What a capture takes: every trace that starts on the calling thread while it runs, with
//! everything recorded in those traces on any thread (threads and tasks started with
//! [`thread`](crate::thread), [`task`](crate::task), [`bind`](crate::bind) or
//! [`FutureExt::in_current_context`](crate::FutureExt::in_current_context) carry the trace),
//! and the scores sent on them or from the calling thread. Code that runs under an observation
//! opened before the capture stays in that observation's trace. Spans that end after the
//! capture returned (a task still running) are not in it.
//!
//! The configuration is [`Config::default()`](crate::Config) unless given with
//! [`capture_with`]: the environment is not read, so `LANGFUSE_*` variables of the machine do
//! not change what a test sees. `capture_debug` and media upload are process-wide settings of
//! [`init`](crate::init) and are not taken from a capture's configuration.

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::config::{Config, ConfigError};
use crate::export::MemoryExporter;
use crate::gate;
use crate::lifecycle::scope_client;
use crate::record::{FinishedScore, FinishedSpan, Level};

/// What a capture recorded, and the value the captured code returned.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Captured<T> {
    /// What the captured code returned.
    pub value: T,
    spans: Vec<FinishedSpan>,
    scores: Vec<FinishedScore>,
}

/// Runs `f` and returns what it recorded; see the [module](self) for what is taken.
///
/// ```
/// use observe_runtime::{observe, testing};
///
/// #[observe]
/// fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// let run = testing::capture(|| parse("x"));
/// assert!(run.value.is_err());
/// assert_eq!(
///     run.tree(),
///     "parse [span] level=ERROR status=\"invalid digit found in string\"\n"
/// );
/// ```
pub fn capture<T>(f: impl FnOnce() -> T) -> Captured<T> {
    match capture_with(Config::default(), f) {
        Ok(captured) => captured,
        // The default configuration is always valid.
        Err(error) => unreachable!("the default configuration is invalid: {error}"),
    }
}

/// [`capture`] with a configuration: sampling, capture switches, field limit and mask as
/// `config` sets them. Fails only when `config` is invalid, with the error `init` gives.
///
/// ```
/// use observe_runtime::{observe, testing, Config};
///
/// #[observe]
/// fn greet(email: &str) -> String {
///     format!("hello {email}")
/// }
///
/// let config = Config::default().mask(|value| match value {
///     serde_json::Value::String(text) if text.contains('@') => "***".into(),
///     other => other,
/// });
/// let run = testing::capture_with(config, || greet("a@example.com")).unwrap();
/// assert_eq!(run.output("greet"), "***");
/// ```
pub fn capture_with<T>(config: Config, f: impl FnOnce() -> T) -> Result<Captured<T>, ConfigError> {
    let scope = Scope::open(config)?;
    let value = {
        let _entered = Entered::new(scope.id);
        f()
    };
    Ok(scope.finish(value))
}

/// [`capture`] for async code: the scope holds on whichever thread the future is polled.
///
/// ```
/// use observe_runtime::{observe, testing};
///
/// #[observe]
/// async fn lookup(id: u32) -> String {
///     format!("item {id}")
/// }
///
/// # futures::executor::block_on(async {
/// let run = testing::capture_async(lookup(7)).await;
/// assert_eq!(run.value, "item 7");
/// assert_eq!(run.output("lookup"), "item 7");
/// # });
/// ```
pub async fn capture_async<F: Future>(future: F) -> Captured<F::Output> {
    match capture_async_with(Config::default(), future).await {
        Ok(captured) => captured,
        Err(error) => unreachable!("the default configuration is invalid: {error}"),
    }
}

/// [`capture_async`] with a configuration, as [`capture_with`].
pub async fn capture_async_with<F: Future>(
    config: Config,
    future: F,
) -> Result<Captured<F::Output>, ConfigError> {
    let scope = Scope::open(config)?;
    let value = InScope {
        scope: scope.id,
        future: Box::pin(future),
    }
    .await;
    Ok(scope.finish(value))
}

/// An open capture scope; closed when dropped (also when the captured code panics).
struct Scope {
    id: NonZeroU64,
    memory: MemoryExporter,
}

impl Scope {
    fn open(config: Config) -> Result<Scope, ConfigError> {
        let memory = MemoryExporter::new();
        let client = scope_client(config, memory.clone())?;
        Ok(Scope {
            id: gate::open_scope(client),
            memory,
        })
    }

    fn finish<T>(self, value: T) -> Captured<T> {
        gate::close_scope(self.id);
        Captured {
            value,
            spans: self.memory.spans(),
            scores: self.memory.scores(),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        gate::close_scope(self.id);
    }
}

/// The calling thread inside a scope until dropped (the scope it was in before comes back).
struct Entered {
    previous: Option<NonZeroU64>,
}

impl Entered {
    fn new(scope: NonZeroU64) -> Entered {
        Entered {
            previous: gate::enter_scope(Some(scope)),
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        gate::enter_scope(self.previous);
    }
}

/// A future polled inside a scope.
struct InScope<F> {
    scope: NonZeroU64,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _entered = Entered::new(this.scope);
        this.future.as_mut().poll(cx)
    }
}

impl<T> Captured<T> {
    /// Every observation recorded, in the order they ended.
    pub fn spans(&self) -> &[FinishedSpan] {
        &self.spans
    }

    /// Every score sent, in the order they were sent.
    pub fn scores(&self) -> &[FinishedScore] {
        &self.scores
    }

    /// The first observation named `name` to start, if any.
    pub fn find(&self, name: &str) -> Option<&FinishedSpan> {
        self.spans
            .iter()
            .filter(|span| span.name == name)
            .min_by_key(|span| span.start_unix_nanos)
    }

    /// Every observation named `name`, in the order they started.
    pub fn all(&self, name: &str) -> Vec<&FinishedSpan> {
        let mut spans: Vec<&FinishedSpan> =
            self.spans.iter().filter(|span| span.name == name).collect();
        spans.sort_by_key(|span| span.start_unix_nanos);
        spans
    }

    /// The first observation named `name` to start.
    ///
    /// # Panics
    ///
    /// When there is none, naming the observations there are.
    #[track_caller]
    pub fn observation(&self, name: &str) -> &FinishedSpan {
        match self.find(name) {
            Some(span) => span,
            None => {
                let mut names: Vec<&str> = self.spans.iter().map(|s| s.name.as_ref()).collect();
                names.sort_unstable();
                names.dedup();
                panic!("no observation named {name:?} was recorded; there are: {names:?}")
            }
        }
    }

    /// The input of the first observation named `name`, as JSON (`Null` when it has none).
    ///
    /// # Panics
    ///
    /// As [`observation`](Self::observation).
    #[track_caller]
    pub fn input(&self, name: &str) -> serde_json::Value {
        json(self.observation(name).input.as_deref())
    }

    /// The output of the first observation named `name`, as JSON (`Null` when it has none).
    ///
    /// # Panics
    ///
    /// As [`observation`](Self::observation).
    #[track_caller]
    pub fn output(&self, name: &str) -> serde_json::Value {
        json(self.observation(name).output.as_deref())
    }

    /// The observations that `parent` is the parent of, in the order they started.
    pub fn children(&self, parent: &FinishedSpan) -> Vec<&FinishedSpan> {
        let mut children: Vec<&FinishedSpan> = self
            .spans
            .iter()
            .filter(|span| {
                span.trace_id == parent.trace_id && span.parent_span_id == Some(parent.span_id)
            })
            .collect();
        children.sort_by_key(|span| span.start_unix_nanos);
        children
    }

    /// The recorded trees as text, for assertions and snapshot tests: one line per observation,
    /// indented two spaces per level under its parent, siblings in the order they started,
    /// traces in the order their roots started. A line is the name, the type in brackets, then
    /// what is set of `model=`, `level=` (when not `DEFAULT`) and `status=` (quoted). Ids and
    /// times are left out, so the text is the same in every run.
    pub fn tree(&self) -> String {
        let mut roots: Vec<&FinishedSpan> = self
            .spans
            .iter()
            .filter(|span| {
                !span.parent_span_id.is_some_and(|parent| {
                    self.spans
                        .iter()
                        .any(|s| s.trace_id == span.trace_id && s.span_id == parent)
                })
            })
            .collect();
        roots.sort_by_key(|span| span.start_unix_nanos);
        let mut text = String::new();
        for root in roots {
            self.render(root, 0, &mut text);
        }
        text
    }

    fn render(&self, span: &FinishedSpan, depth: usize, text: &mut String) {
        use std::fmt::Write;
        for _ in 0..depth {
            text.push_str("  ");
        }
        let _ = write!(text, "{} [{}]", span.name, span.kind);
        if let Some(model) = &span.model {
            let _ = write!(text, " model={model}");
        }
        if span.level != Level::Default {
            let _ = write!(text, " level={}", span.level);
        }
        if let Some(status) = &span.status_message {
            let _ = write!(text, " status={status:?}");
        }
        text.push('\n');
        for child in self.children(span) {
            self.render(child, depth + 1, text);
        }
    }
}

fn json(text: Option<&str>) -> serde_json::Value {
    match text {
        None => serde_json::Value::Null,
        Some(text) => serde_json::from_str(text)
            .unwrap_or_else(|_| serde_json::Value::String(text.to_string())),
    }
}
