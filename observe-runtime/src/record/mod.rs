//! The record layer: what an observation is once it has ended, as plain data. Its type and level,
//! usage and cost, the trace attributes it shares with its trace, and the finished-span record in
//! the form the hot path writes and the form exporters read, and scores. Imports only the leaves.

pub(crate) mod baggage;
mod experiment;
mod fields;
mod kind;
mod prompt;
pub(crate) mod score;
mod span;
mod trace;
mod usage;

pub use experiment::ExperimentAttributes;
pub use fields::ObservationFields;
#[cfg(feature = "tracing")]
pub(crate) use kind::raise_level;
pub use kind::{Level, ObservationType};
pub use prompt::PromptLink;
pub use score::{FinishedScore, ScoreValue};
pub use span::FinishedSpan;
pub use trace::TraceAttributes;
pub use usage::{Cost, Usage};

pub(crate) use fields::{deferred, fill_now};
pub(crate) use span::{EndStamp, Record, SpanData};
pub(crate) use trace::{valid_environment, TraceOptions, TraceState};
