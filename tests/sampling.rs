//! Sampling: decided once per trace at its root by OpenTelemetry's trace-id-ratio rule, so every
//! process agrees; a sampled-out trace records nothing and serializes nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use observe_runtime::{span, Config, Exporter, MemoryExporter, TraceContext};

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        serializer.serialize_str("counted")
    }
}

#[test]
fn sampling_keeps_whole_traces_by_the_trace_id_ratio_rule() {
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .sample_rate(0.25)
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .unwrap();
    let mut started = Vec::new();
    for _ in 0..2000 {
        let root = span("sampled-root").input(Counted).start();
        let context = TraceContext::current().unwrap();
        span("sampled-child").input(Counted).start().end();
        root.end();
        started.push(context);
    }
    let spans = memory.spans();
    let threshold = (0.25 * 2f64.powi(64)) as u64;
    let mut kept = 0;
    for context in &started {
        let id = context.trace_id().to_bytes();
        let low = u64::from_be_bytes(id[8..].try_into().unwrap());
        let in_trace = spans
            .iter()
            .filter(|s| s.trace_id == context.trace_id())
            .count();
        if low < threshold {
            assert!(context.is_sampled());
            assert_eq!(in_trace, 2, "a kept trace is complete");
            kept += 1;
        } else {
            assert!(!context.is_sampled());
            assert_eq!(in_trace, 0, "a dropped trace leaves nothing");
        }
    }
    assert_eq!(spans.len(), kept * 2);
    assert!(
        (300..700).contains(&kept),
        "kept {kept} of 2000 at rate 0.25"
    );
    assert_eq!(
        SERIALIZED.load(Ordering::SeqCst),
        kept * 2,
        "only recorded observations serialize their input"
    );
    guard.shutdown().unwrap();

    // Rate 0 keeps nothing; a second init after shutdown is allowed.
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .sample_rate(0.0)
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .unwrap();
    for _ in 0..100 {
        span("never").start().end();
    }
    assert!(memory.spans().is_empty());
    guard.shutdown().unwrap();
}
