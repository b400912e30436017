//! Finished spans → an OTLP `ExportTraceServiceRequest` in protobuf, sent by the [`OtlpSink`]. The Langfuse attribute names
//! live here and nowhere else (the wire doc, section 2).
//!
//! The protobuf is written straight into a buffer the sink keeps between requests: no message
//! structs, no allocation per span or attribute (but for the usage and cost JSON of a generation,
//! made by `to_json`). A message whose length is known before it is written (a key-value, an
//! attribute value, the status, the scope) gets its exact length first; one whose length is not
//! (a span, the scope spans, the resource spans) gets five bytes reserved and filled in afterwards
//! with a padded varint (`0x85 0x80 0x80 0x80 0x00` is 5), which every protobuf decoder accepts.
//! Field numbers and types are those of the official opentelemetry-proto files
//! (collector/trace/v1, trace/v1, common/v1, resource/v1).
//!
//! - `wire.rs`: the protobuf wire primitives;
//! - `encode.rs`: spans, their attributes and the envelope, as protobuf (and gzip);
//! - `sink.rs`: the sink that sends the bodies (media first), spools and exports scores;
//! - `tests.rs` and `prost_reference.rs`: the encoder checked against the official messages.

mod encode;
mod sink;
mod wire;

#[cfg(test)]
mod prost_reference;
#[cfg(test)]
mod tests;

pub(crate) use encode::{bench_encode, estimated_size, Envelope};
pub(crate) use sink::OtlpSink;
