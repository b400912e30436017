//! The encoder against the official messages (prost), and its speed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;

use super::encode::*;
use super::prost_reference::{self, ExportTraceServiceRequest};
use super::wire::{self, *};
use crate::ids::{ObservationId, TraceId};
use crate::record::{Cost, PromptLink, TraceAttributes, Usage};
use crate::record::{FinishedSpan, Level, ObservationType};

fn plain(name: &'static str) -> FinishedSpan {
    FinishedSpan {
        trace_id: TraceId::from_seed(name),
        span_id: ObservationId::from_bytes(*b"\x00\x00\x00\x00\x00\x00\x00\x07").unwrap(),
        parent_span_id: ObservationId::from_bytes(*b"\x00\x00\x00\x00\x00\x00\x01\x00"),
        is_local_root: false,
        name: name.into(),
        kind: ObservationType::Span,
        start_unix_nanos: 1_764_081_844_123_456_789,
        end_unix_nanos: 1_764_081_844_223_456_789,
        input: None,
        output: None,
        level: Level::Default,
        status_message: None,
        model: None,
        model_parameters: None,
        usage: None,
        cost: None,
        completion_start_unix_nanos: None,
        prompt: None,
        metadata: Vec::new(),
        trace: Arc::new(TraceAttributes::default()),
        experiment_item: false,
        media: Vec::new(),
    }
}

/// Spans that between them set every field, and none.
fn varied_spans() -> Vec<FinishedSpan> {
    let everything = FinishedSpan {
        kind: ObservationType::Generation,
        input: Some(r#"{"messages":[{"role":"user","content":"hi"}]}"#.into()),
        output: Some(r#""hello""#.into()),
        level: Level::Warning,
        status_message: Some("slow".into()),
        model: Some("gpt-4o".into()),
        model_parameters: Some(r#"{"temperature":0.2}"#.into()),
        usage: Some(Usage {
            input: 10,
            output: 25,
            total: None,
            details: BTreeMap::from([("cache_read_input_tokens".into(), 4)]),
        }),
        cost: Some(Cost {
            input: Some(0.001),
            output: Some(0.002),
            total: None,
            details: BTreeMap::new(),
        }),
        completion_start_unix_nanos: Some(1_764_081_844_150_000_000),
        prompt: Some(PromptLink {
            name: "greeting".into(),
            version: 3,
        }),
        metadata: vec![
            ("step".into(), "3".into()),
            ("source".into(), "\"wiki\"".into()),
        ],
        trace: Arc::new(TraceAttributes {
            name: Some("chat".into()),
            user_id: Some("user-7".into()),
            session_id: Some("session-42".into()),
            tags: vec!["a".into(), "beta".into(), String::new()],
            metadata: vec![("tenant".into(), "\"acme\"".into())],
            release: Some("v2".into()),
            version: Some("1.2.3".into()),
            public: Some(false),
            input: Some("\"the question\"".into()),
            output: Some("{\"answer\":42}".into()),
            prompt: None,
            experiment: None,
        }),
        ..plain("everything")
    };
    let nothing = FinishedSpan {
        parent_span_id: None,
        is_local_root: true,
        name: "".into(),
        start_unix_nanos: 0,
        end_unix_nanos: 0,
        ..plain("nothing")
    };
    let prompt_not_generation = FinishedSpan {
        prompt: Some(PromptLink {
            name: "ignored".into(),
            version: 1,
        }),
        trace: Arc::new(TraceAttributes {
            public: Some(true),
            tags: vec!["only".into()],
            ..Default::default()
        }),
        ..plain("prompt on a span")
    };
    let error = FinishedSpan {
        level: Level::Error,
        status_message: Some("boom: connection refused".into()),
        kind: ObservationType::Tool,
        ..plain("error")
    };
    let error_without_message = FinishedSpan {
        level: Level::Error,
        ..plain("error without message")
    };
    let remote_root = FinishedSpan {
        is_local_root: true,
        level: Level::Debug,
        ..plain("remote root")
    };
    let local_root = FinishedSpan {
        is_local_root: true,
        parent_span_id: None,
        ..plain("local root")
    };
    let non_ascii = FinishedSpan {
        name: "résumé 検索".into(),
        input: Some("\"héllo wörld, 你好, 🎉\"".into()),
        metadata: vec![("clé".into(), "\"valeur ünïcode\"".into())],
        trace: Arc::new(TraceAttributes {
            name: Some("трасса".into()),
            metadata: vec![("ключ".into(), "\"значение\"".into())],
            ..Default::default()
        }),
        ..plain("non-ASCII")
    };
    let empty_strings = FinishedSpan {
        kind: ObservationType::Generation,
        input: Some(String::new()),
        output: Some(String::new()),
        status_message: Some(String::new()),
        model: Some(String::new()),
        prompt: Some(PromptLink {
            name: String::new(),
            version: 0,
        }),
        metadata: vec![(String::new(), String::new())],
        trace: Arc::new(TraceAttributes {
            name: Some(String::new()),
            user_id: Some(String::new()),
            tags: vec![String::new()],
            metadata: vec![(String::new(), String::new())],
            release: Some(String::new()),
            version: Some(String::new()),
            ..Default::default()
        }),
        ..plain("empty strings")
    };
    let long = FinishedSpan {
        // Lengths that take two and three varint bytes.
        input: Some("x".repeat(200)),
        output: Some("y".repeat(20_000)),
        metadata: vec![("big".into(), "z".repeat(130))],
        ..plain("long")
    };
    let experiment = Arc::new(crate::record::ExperimentAttributes {
        id: "c44fdad8f2839b02".into(),
        name: "nightly é/run".into(),
        description: Some("every question".into()),
        metadata: Some("{\"model\": \"gpt-4o\"}".into()),
        dataset_id: Some("ds-123".into()),
        item_id: "item-1".into(),
        item_metadata: None,
        item_expected_output: Some("4".into()),
        item_root_observation_id: Some("0000000000000007".into()),
    });
    let experiment_task = FinishedSpan {
        experiment_item: true,
        trace: Arc::new(TraceAttributes {
            experiment: Some(experiment.clone()),
            ..Default::default()
        }),
        ..plain("experiment-item-task")
    };
    let experiment_child = FinishedSpan {
        trace: Arc::new(TraceAttributes {
            experiment: Some(experiment),
            ..Default::default()
        }),
        ..plain("inside the task")
    };
    vec![
        everything,
        experiment_task,
        experiment_child,
        nothing,
        prompt_not_generation,
        error,
        error_without_message,
        remote_root,
        local_root,
        non_ascii,
        empty_strings,
        long,
    ]
}

#[test]
fn writer_matches_prost() {
    let envelopes = [
        Envelope::new(
            "service",
            &[
                ("host.name".into(), "box".into()),
                ("service.name".into(), "shadowed".into()),
                (String::new(), String::new()),
            ],
            Some("production".into()),
            Some("v1".into()),
        ),
        Envelope::new("", &[], None, None),
    ];
    let spans = varied_spans();
    let mut body = vec![0xff; 7]; // encode clears what was there
    for envelope in &envelopes {
        let batches = [&spans[..], &spans[..1], &spans[1..2], &[]];
        for batch in batches {
            let expected = prost_reference::encode(batch, envelope);
            encode(&mut body, batch, envelope);
            let want = ExportTraceServiceRequest::decode(&expected[..]).unwrap();
            let got = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            assert_eq!(got, want);
            // The same fields are present (an empty string attribute, a `false`), not only
            // equal after decoding: re-encoded, the bytes are prost's.
            assert_eq!(got.encode_to_vec(), expected);
            // Each span on its own, for a readable failure.
            for (got, want) in got.resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .zip(&want.resource_spans[0].scope_spans[0].spans)
            {
                assert_eq!(got, want, "span {:?}", want.name);
            }
        }
    }
}

#[test]
fn padded_lengths_read_back() {
    for len in [0usize, 1, 127, 128, 16_383, 16_384, 2_097_152, 300_000_000] {
        let mut out = vec![0u8; 3];
        let start = open(&mut out, 2);
        out.resize(start + len, 0);
        close(&mut out, start);
        assert_eq!(out[3], 2 << 3 | 2);
        let mut slice = &out[4..9];
        assert_eq!(
            prost::encoding::decode_varint(&mut slice).unwrap(),
            len as u64
        );
    }
}

#[test]
fn varint_lengths() {
    for value in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
        let mut out = Vec::new();
        wire::varint(&mut out, value);
        assert_eq!(out.len(), wire::varint_len(value), "{value}");
        assert_eq!(out.len(), prost::encoding::encoded_len_varint(value));
    }
}

#[test]
fn gzip_reuses_its_buffer() {
    let (batch, envelope) = bench_batch(64);
    let mut body = Vec::new();
    let mut gzip = Gzip::default();
    encode(&mut body, &batch, &envelope);
    // The same body, an empty one, another one: the kept compressor starts afresh each time.
    let (other, _) = bench_batch(3);
    let mut other_body = Vec::new();
    encode(&mut other_body, &other, &envelope);
    for body in [&body, &Vec::new(), &other_body, &body] {
        gzip.zip(body).unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(gzip.bytes()),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(&unzipped, body);
    }
}

/// Runs `f` repeatedly for about `seconds`, returns the best per-call time of 5 rounds.
fn best_time(seconds: f64, mut f: impl FnMut() -> usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u32;
        let mut sink = 0usize;
        while start.elapsed().as_secs_f64() < seconds / 5.0 {
            sink = sink.wrapping_add(f());
            calls += 1;
        }
        std::hint::black_box(sink);
        best = best.min(start.elapsed() / calls);
    }
    best
}

/// The benchmark batch with inputs and outputs of varied words, about 200 bytes each: closer
/// to real text for gzip than the benchmark's identical spans.
fn varied_batch(spans: usize) -> (Vec<FinishedSpan>, Envelope) {
    const WORDS: [&str; 16] = [
        "the",
        "capital",
        "of",
        "France",
        "is",
        "Paris",
        "which",
        "river",
        "Seine",
        "city",
        "population",
        "museum",
        "Louvre",
        "tower",
        "Eiffel",
        "history",
    ];
    let (mut batch, envelope) = bench_batch(spans);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut text = |n: usize| {
        let mut out = String::from("\"");
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.push_str(WORDS[(state % 16) as usize]);
            out.push(' ');
            out.push_str(&(state % 1000).to_string());
            out.push(' ');
        }
        out.push('"');
        out
    };
    for span in &mut batch {
        span.input = Some(text(20));
        span.output = Some(text(20));
    }
    (batch, envelope)
}

/// Encoder throughput on one core. Run with
/// `cargo test --release -p observe-runtime --lib throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn encode_throughput() {
    const SPANS: usize = 512;
    let per_second = |t: Duration| SPANS as f64 / t.as_secs_f64();
    let t = best_time(2.0, || bench_encode(SPANS, false));
    println!(
        "bench_encode({SPANS}, false): {:>10.0} spans/s",
        per_second(t)
    );
    let t = best_time(2.0, || bench_encode(SPANS, true));
    println!(
        "bench_encode({SPANS}, true):  {:>10.0} spans/s",
        per_second(t)
    );
    let (batch, envelope) = bench_batch(SPANS);
    let t = best_time(2.0, || bench_batch(SPANS).0.len());
    println!(
        "building the batch alone:     {:>10.0} spans/s",
        per_second(t)
    );
    let mut body = Vec::new();
    let t = best_time(2.0, || {
        encode(&mut body, &batch, &envelope);
        body.len()
    });
    println!(
        "encode alone:                 {:>10.0} spans/s",
        per_second(t)
    );
    let t = best_time(2.0, || prost_reference::encode(&batch, &envelope).len());
    println!(
        "encode alone, prost structs:  {:>10.0} spans/s",
        per_second(t)
    );
    let mut gzip = Gzip::default();
    for (what, (batch, envelope)) in [
        ("benchmark", (batch, envelope)),
        ("varied text", varied_batch(SPANS)),
    ] {
        encode(&mut body, &batch, &envelope);
        let t = best_time(2.0, || {
            gzip.zip(&body).unwrap();
            gzip.bytes().len()
        });
        println!(
            "gzip alone, {what:<12}:     {:>10.0} spans/s, {:.0} MB/s ({} -> {} bytes)",
            per_second(t),
            body.len() as f64 / t.as_secs_f64() / 1e6,
            body.len(),
            gzip.bytes().len()
        );
    }
}
