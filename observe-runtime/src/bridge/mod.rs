//! The bridge from `tracing` (feature `tracing`): a `tracing_subscriber` layer whose spans are
//! observations of the same traces as `#[observe]`, opened and ended through the local layer's
//! machinery, so that sampling, capture switches, masking, field limits and trace attributes
//! apply to them as to any observation. Imports the local layer, the gate and below; never the
//! lifecycle.

mod closed;
mod fields;
mod layer;
mod mapping;

pub use layer::{tracing_layer, TracingLayer};
