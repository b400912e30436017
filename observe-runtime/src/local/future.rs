//! Carrying a trace context through a future: [`FutureExt::in_context`] makes the context current
//! on every poll, and while the future is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::context::TraceContext;

/// Runs futures with a trace context current on every poll.
pub trait FutureExt: Future + Sized {
    /// Runs this future with `context` current on every poll, on whichever thread polls it
    /// (for `tokio::spawn` and friends).
    ///
    /// ```
    /// use observe_runtime::{FutureExt, TraceContext};
    /// # async fn tool() {}
    /// # async fn demo() {
    /// if let Some(context) = TraceContext::current() {
    ///     tokio::spawn(tool().in_context(context));
    /// }
    /// # }
    /// ```
    fn in_context(self, context: TraceContext) -> InContext<Self> {
        InContext {
            future: Some(self),
            context: Some(context),
        }
    }

    /// Runs this future in the context current here and now (the observation that creates it),
    /// wherever it is polled; with nothing current, it runs as is.
    ///
    /// ```
    /// use observe_runtime::FutureExt;
    /// # async fn tool() {}
    /// # async fn demo() {
    /// tokio::spawn(tool().in_current_context());
    /// # }
    /// ```
    fn in_current_context(self) -> InContext<Self> {
        InContext {
            future: Some(self),
            context: TraceContext::current(),
        }
    }
}

impl<F: Future> FutureExt for F {}

pin_project_lite::pin_project! {
    /// A future running with a trace context current on every poll; see
    /// [`FutureExt::in_context`]. Dropped, it drops the inner future with the context current.
    #[derive(Debug)]
    pub struct InContext<F> {
        #[pin]
        future: Option<F>,
        context: Option<TraceContext>,
    }

    impl<F> PinnedDrop for InContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.as_mut().as_pin_mut().is_some() {
                let _attached = this.context.as_ref().map(TraceContext::attach);
                this.future.set(None);
            }
        }
    }
}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Pending;
        };
        let _attached = this.context.as_ref().map(TraceContext::attach);
        future.poll(cx)
    }
}
