//! The local layer: what runs on the user's threads. The stack of what is current
//! ([`stack`]), the [`context`] handle that carries a trace elsewhere and its W3C text forms
//! ([`w3c`]), opening and ending observations ([`span`]), the handles on the running trace and
//! observation, scores on what runs now ([`score`]), the attribute's observation and future
//! wrappers, the per-thread buffers that finished records wait in ([`buffer`], each [`owned`] by
//! its thread), and what is still open when the process ends without unwinding ([`exit`]).
//! Imports the gate, the record layer and the leaves; never the lifecycle.

pub(crate) mod buffer;
pub(crate) mod context;
pub(crate) mod exit;
pub(crate) mod fanout;
pub(crate) mod future;
pub(crate) mod handle;
#[cfg(feature = "http")]
mod http;
pub(crate) mod observed;
pub(crate) mod origin;
pub(crate) mod owned;
pub(crate) mod score;
pub(crate) mod span;
pub(crate) mod stack;
pub(crate) mod stream;
pub(crate) mod trace;
pub(crate) mod w3c;
