//! The `#[observe]` attribute of `observe`, the Langfuse observability SDK for Rust.
//!
//! Use it through the runtime crate, `observe_runtime::observe`: the code it generates calls into
//! `observe_runtime::__private` and nothing else. This crate holds only the macro:
//!
//! - `attr.rs` parses and checks the options;
//! - `expand.rs` generates the instrumented function.

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Records every call of a function as a Langfuse observation: its name, type, input (the
/// arguments), output (the return value), errors, panics, and its place in the trace (the
/// observation that was current when it was called is its parent).
///
/// ```ignore
/// use observe_runtime::observe;
///
/// #[observe]
/// fn retrieve(query: &str, k: usize) -> Vec<String> {
///     (0..k).map(|i| format!("doc {i} about {query}")).collect()
/// }
/// ```
///
/// A call of `retrieve("rust", 2)` records a span named `retrieve` with input
/// `{"query":"rust","k":2}` and output `["doc 0 about rust","doc 1 about rust"]`. When tracing is
/// off (no client, disabled, or the trace sampled out) the function costs one relaxed atomic
/// load and no argument is touched.
///
/// # Options
///
/// Options are comma-separated, each given at most once: `name`, `as_type`, `capture_input`,
/// `capture_output`, `skip`, `skip_all`, `stream` and `crate`.
///
/// ## `name = "..."`
///
/// The observation's name; the default is the function's name.
///
/// ```ignore
/// #[observe(name = "vector-search")]
/// fn search(query: &str) -> Vec<u64> { vec![1, 2, 3] }
/// ```
///
/// ## `as_type = "..."`
///
/// The Langfuse observation type: `span` (the default), `generation`, `event`, `agent`, `tool`,
/// `chain`, `retriever`, `evaluator`, `embedding` or `guardrail`. Anything else is a compile error.
///
/// ```ignore
/// #[observe(as_type = "generation")]
/// fn complete(prompt: &str) -> String {
///     observe_runtime::current_observation()
///         .model("gpt-4o")
///         .usage(observe_runtime::Usage { input: 12, output: 30, ..Default::default() });
///     format!("an answer to {prompt}")
/// }
/// ```
///
/// ## `capture_input = bool`, `capture_output = bool`
///
/// Whether the arguments, and the return value, are recorded. Without the option the runtime
/// configuration decides (`Config::capture_io`, on by default).
///
/// ```ignore
/// #[observe(capture_input = false, capture_output = false)]
/// fn handle(document: &str) -> usize { document.len() }
/// ```
///
/// An `Err` is recorded as an error even with `capture_output = false` (see below).
///
/// ## `skip(a, b)`, `skip_all`
///
/// Leave some arguments, or all of them, out of the input. Naming an argument the function does
/// not have is a compile error. `self` is never captured, so `skip(self)` is accepted but changes
/// nothing.
///
/// ```ignore
/// #[observe(skip(api_key))]
/// fn call_api(api_key: &str, query: &str) -> usize { api_key.len() + query.len() }
///
/// #[observe(skip_all)]
/// fn load(secret: &str) -> bool { !secret.is_empty() }
/// ```
///
/// ## `stream = bool`
///
/// A function returning an iterator or a stream (`impl Iterator<..>`, `Box<dyn Iterator<..>>`,
/// `impl Stream<..>`, `Pin<Box<dyn Stream<..>>>`, or a `Result` of one; for an `async fn`, its
/// output) keeps its observation open until the last item, records the first item's time and
/// collects the items as its output. `stream = false` records such a value as a plain value;
/// `stream = true` wraps a type alias of `Pin<Box<dyn Stream>>` the signature hides, such as
/// `BoxStream`.
///
/// ```ignore
/// #[observe(as_type = "generation", stream = true)]
/// fn completion(prompt: &str) -> BoxStream<'static, String> { todo!() }
///
/// #[observe(stream = false)]
/// fn ids() -> impl Iterator<Item = u32> { 0..3 }
/// ```
///
/// ## `crate = path`
///
/// Where the runtime crate is, when it is renamed in `Cargo.toml` or re-exported by another
/// crate. The default is `::observe_runtime`.
///
/// ```ignore
/// mod sdk {
///     pub use observe_runtime as runtime;
/// }
///
/// #[observe(crate = crate::sdk::runtime)]
/// fn step() -> u8 { 1 }
/// ```
///
/// # What is captured
///
/// - **Input**: a JSON object with one member per named argument, in order (`{"query":"…","k":3}`).
///   Arguments bound by patterns are captured by the names they bind: `(a, b): (u8, u8)` gives
///   `a` and `b`, `Point { x, y }: Point` gives `x` and `y`. `self` and skipped arguments are
///   left out. Arguments are captured by reference when the call starts, before the body runs,
///   so they need not be `Clone`.
/// - **Output**: the return value, unless the return type is `()` or absent.
/// - **`Result`**: when the return type is syntactically a `Result` (its last path segment is
///   `Result` with generic arguments: `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`),
///   `Ok(v)` records `v` as the output (nothing for `Ok(())`), and `Err(e)` marks the observation
///   failed: level `ERROR`, status message and output set to the error's `Display` text (else its
///   `Debug` text, else a placeholder). The error is recorded even when output capture is off.
/// - **Panics**: the observation ends with level `ERROR` and the panic message as its status
///   message; the panic goes on unwinding.
/// - **Cancellation**: a future dropped before it completes ends its observation with level
///   `WARNING` and status message `cancelled`.
///
/// Each value is turned into JSON through its `Serialize` implementation when the type has one,
/// else its `Debug` text (as a JSON string), else a placeholder naming the type. The choice is
/// made at compile time from the concrete type, so the function needs no extra bounds; a generic
/// argument `T` is captured by what its bounds promise (`T: Debug` gives its `Debug` text, an
/// unbounded `T` a placeholder).
///
/// # Function shapes
///
/// Free functions, methods (`&self`, `&mut self`, `self`, `self: Box<Self>`), associated
/// functions, generic functions, `impl Trait` arguments and return types, `unsafe fn`, `async fn`
/// (also in traits), and functions in `#[async_trait]` impls all work. `const fn` is refused,
/// since an observation is a run-time thing.
///
/// - A plain function runs its body in a closure under `Observed::call`, which makes the
///   observation current on the thread for the duration of the call.
/// - An `async fn` keeps its signature; its observation starts at the first poll and is current
///   during every poll, on whichever thread polls it.
/// - A function whose last expression is an `async` block, bare or in `Box::pin(..)` (what
///   `#[async_trait]` generates), starts its observation when it is called and instruments the
///   block, not the allocation of it.
///
/// # Expansion
///
/// ```ignore
/// #[observe]
/// fn f(a: A) -> Result<T, E> { body }
/// ```
///
/// becomes, in substance (the generated locals have mixed-site hygiene, so they can neither clash
/// with nor be seen by the user's code; every path is absolute):
///
/// ```ignore
/// fn f(a: A) -> Result<T, E> {
///     // Handing the closure straight to a function taking `FnOnce` makes it `FnOnce`, so the
///     // body may return borrows of what it captured (`&mut self.field`).
///     fn __observe_once<R, F: FnOnce() -> R>(body: F) -> F { body }
///     static __OBSERVE_META: FnMeta = FnMeta {
///         name: "f", kind: ObservationType::Span, capture_input: None, capture_output: None,
///     };
///     // One relaxed load when tracing is off; else the observation is opened on this thread.
///     let mut __observe = ::observe_runtime::__private::start(&__OBSERVE_META);
///     if let Some(observed) = &mut __observe {
///         // Each argument's JSON is written straight into one reusable buffer; the key
///         // `"a"` was quoted at compile time.
///         if let Some(mut input) = observed.input_writer() {
///             (&&&Wrap(&a)).__observe_write(input.arg("\"a\""));
///         }
///     }
///     let __observe_body = __observe_once(move || {
///         #[allow(unreachable_code)]
///         if false { let __observe_fake_return: Result<T, E> = loop {}; return __observe_fake_return; }
///         body
///     });
///     match __observe {
///         // Tracing off: the body, and nothing else.
///         None => { core::mem::forget(__observe); __observe_body() }
///         // Observed: the body and the recording of its result run out of line.
///         observed => run_observed(observed, __observe_body, |__observe_ret, __observe| {
///             if let Some(observed) = __observe {
///                 match __observe_ret {
///                     Ok(value) => if let Some(mut output) = observed.output_writer() {
///                         (&&&Wrap(value)).__observe_write(output.out());
///                     },
///                     Err(error) => observed.record_error((&&&ErrWrap(error)).__observe_error(limit)),
///                 }
///             }
///         }), // the observation ends when `run_observed` returns
///     }
/// }
/// ```
///
/// An `async fn` keeps its signature; after the same prologue its body reads
/// `let __observe_future = async move { fake return edge; body };` and
/// `let (__observe_ret, mut __observe) = __private::instrument(__observe, __observe_future).await;`
/// then records the output as above. A function whose tail is `async move { .. }` (or
/// `Box::pin(async move { .. })`) runs the prologue when called, wraps the block in
/// `__private::instrument` where it stands, and returns
/// `async move { let (ret, obs) = instrumented.await; record output; ret }` (boxed again if it
/// was).
#[proc_macro_attribute]
pub fn observe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(args.into(), item.into()).into()
}
