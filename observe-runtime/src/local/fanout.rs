//! Fan-out in one call: closures, threads, scoped threads, rayon and tokio tasks that run under
//! the observation that started them. Each captures [`TraceContext::current`] where it is made
//! and attaches it where it runs; with nothing current, the work runs as is.

use std::future::Future;

use super::context::TraceContext;
use super::future::FutureExt;

impl TraceContext {
    /// Wraps a closure so that it runs with this context current, on whichever thread calls it.
    ///
    /// ```
    /// use observe_runtime::{span, TraceContext};
    /// let _root = span("request").start();
    /// let work = TraceContext::current().map(|context| context.bind(|| span("job").start().end()));
    /// std::thread::spawn(move || work.map(|work| work())).join().unwrap();
    /// ```
    pub fn bind<F, R>(self, f: F) -> impl FnOnce() -> R
    where
        F: FnOnce() -> R,
    {
        move || {
            let _attached = self.attach();
            f()
        }
    }

    /// Wraps a closure that is called many times, maybe on many threads at once (rayon's
    /// `map`, `for_each`), so that every call runs with this context current.
    pub fn bind_each<F, T, R>(self, f: F) -> impl Fn(T) -> R
    where
        F: Fn(T) -> R,
    {
        move |item| {
            let _attached = self.attach();
            f(item)
        }
    }
}

/// Wraps a closure so that it runs under the observation current here and now, on whichever
/// thread calls it: for `std::thread::scope`, thread pools and callbacks.
///
/// ```
/// use observe_runtime::{bind, observe};
///
/// #[observe]
/// fn embed(chunk: &str) -> usize {
///     chunk.len()
/// }
///
/// #[observe]
/// fn index(chunks: &[&str]) -> usize {
///     std::thread::scope(|scope| {
///         let handles: Vec<_> = chunks
///             .iter()
///             .map(|chunk| scope.spawn(bind(move || embed(chunk))))
///             .collect();
///         handles.into_iter().map(|h| h.join().unwrap()).sum()
///     })
/// }
/// assert_eq!(index(&["a", "bc"]), 3);
/// ```
pub fn bind<F, R>(f: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    let context = TraceContext::current();
    move || {
        let _attached = context.as_ref().map(TraceContext::attach);
        f()
    }
}

/// Wraps a closure that is called many times, maybe on many threads at once, so that every call
/// runs under the observation current here and now: rayon's `par_iter().map(bind_each(..))`.
///
/// ```
/// use observe_runtime::{bind_each, observe};
///
/// #[observe]
/// fn score(text: &str) -> usize {
///     text.len()
/// }
///
/// #[observe]
/// fn score_all(texts: &[&str]) -> Vec<usize> {
///     // With rayon: texts.par_iter().map(bind_each(|t| score(t))).collect()
///     texts.iter().map(bind_each(|t: &&str| score(t))).collect()
/// }
/// assert_eq!(score_all(&["a", "bc"]), vec![1, 2]);
/// ```
pub fn bind_each<F, T, R>(f: F) -> impl Fn(T) -> R
where
    F: Fn(T) -> R,
{
    let context = TraceContext::current();
    move |item| {
        let _attached = context.as_ref().map(TraceContext::attach);
        f(item)
    }
}

/// Threads that run under the observation that spawned them.
pub mod thread {
    use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

    /// [`std::thread::spawn`], with the new thread's observations under the current one.
    ///
    /// ```
    /// use observe_runtime::{observe, thread};
    ///
    /// #[observe]
    /// fn tool(n: u32) -> u32 {
    ///     n * 2
    /// }
    ///
    /// #[observe]
    /// fn agent() -> u32 {
    ///     let handles: Vec<_> = (0..3).map(|n| thread::spawn(move || tool(n))).collect();
    ///     handles.into_iter().map(|h| h.join().unwrap()).sum()
    /// }
    /// assert_eq!(agent(), 6);
    /// ```
    pub fn spawn<F, T>(f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        std::thread::spawn(super::bind(f))
    }

    /// `scope.spawn(f)` inside [`std::thread::scope`], with the new thread's observations under
    /// the current one.
    ///
    /// ```
    /// use observe_runtime::{observe, thread};
    ///
    /// #[observe]
    /// fn count(words: &[&str]) -> usize {
    ///     words.len()
    /// }
    ///
    /// let words = ["a", "b", "c", "d"];
    /// let total: usize = std::thread::scope(|scope| {
    ///     let halves: Vec<_> = words
    ///         .chunks(2)
    ///         .map(|half| thread::spawn_scoped(scope, move || count(half)))
    ///         .collect();
    ///     halves.into_iter().map(|h| h.join().unwrap()).sum()
    /// });
    /// assert_eq!(total, 4);
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        scope.spawn(super::bind(f))
    }
}

/// Tokio tasks that run under the observation that spawned them.
pub mod task {
    use super::*;

    /// [`tokio::spawn`], with the task's observations under the current one (the task may run on
    /// any worker thread, and its observations still land under the parent).
    ///
    /// ```
    /// use observe_runtime::{observe, task};
    ///
    /// #[observe(as_type = "tool")]
    /// async fn search(query: String) -> usize {
    ///     query.len()
    /// }
    ///
    /// #[observe(as_type = "agent")]
    /// async fn agent() -> usize {
    ///     let a = task::spawn(search("rust".into()));
    ///     let b = task::spawn(search("tokio".into()));
    ///     a.await.unwrap() + b.await.unwrap()
    /// }
    /// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
    /// assert_eq!(agent().await, 9);
    /// # });
    /// ```
    pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(future.in_current_context())
    }

    /// [`tokio::task::spawn_blocking`], with the closure's observations under the current one.
    ///
    /// ```
    /// use observe_runtime::{observe, task};
    ///
    /// #[observe]
    /// fn parse(text: String) -> usize {
    ///     text.len()
    /// }
    ///
    /// #[observe]
    /// async fn load() -> usize {
    ///     task::spawn_blocking(|| parse("a large file".into())).await.unwrap()
    /// }
    /// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
    /// assert_eq!(load().await, 12);
    /// # });
    /// ```
    pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        tokio::task::spawn_blocking(bind(f))
    }
}
