//! What an instrumented call costs, beside the peers: `tracing`'s `#[instrument]` and
//! `fastrace`'s `#[trace]`. Results and ratios are in BENCHMARKS.md.
//!
//! `cargo bench --bench overhead`

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn plain(x: u64) -> u64 {
    x.wrapping_mul(31).rotate_left(7)
}

#[observe_runtime::observe(capture_input = false, capture_output = false)]
fn observed(x: u64) -> u64 {
    plain(x)
}

#[observe_runtime::observe]
fn observed_with_capture(x: u64) -> u64 {
    plain(x)
}

#[tracing::instrument(skip_all)]
fn with_tracing(x: u64) -> u64 {
    plain(x)
}

#[fastrace::trace]
fn with_fastrace(x: u64) -> u64 {
    plain(x)
}

/// Tracing off: nothing installed anywhere.
fn off(c: &mut Criterion) {
    let mut group = c.benchmark_group("off");
    group.bench_function("plain fn", |b| b.iter(|| plain(black_box(7))));
    group.bench_function("observe", |b| b.iter(|| observed(black_box(7))));
    group.bench_function("tracing", |b| b.iter(|| with_tracing(black_box(7))));
    group.bench_function("fastrace", |b| b.iter(|| with_fastrace(black_box(7))));
    group.finish();
}

/// A local endpoint that reads each request and answers 200, so the real exporter runs.
fn discard_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = vec![0u8; 1 << 16];
                let mut pending = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buffer) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buffer[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if pending.len() < end + 4 + length {
                            break;
                        }
                        pending.drain(..end + 4 + length);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

/// Recording: every call is one observation in a recorded trace, exported for real (observe) or
/// collected (fastrace) by a background thread.
fn recording(c: &mut Criterion) {
    let mut group = c.benchmark_group("recording");
    group.measurement_time(Duration::from_secs(3));

    let guard = observe_runtime::Config::default()
        .public_key("pk-lf-bench")
        .secret_key("sk-lf-bench")
        .base_url(discard_server())
        .max_queue(1 << 16)
        .init()
        .expect("init");
    {
        let _root = observe_runtime::span("bench-root").start();
        group.bench_function("observe", |b| b.iter(|| observed(black_box(7))));
        group.bench_function("observe + capture", |b| {
            b.iter(|| observed_with_capture(black_box(7)))
        });
    }
    let report = guard.shutdown();
    eprintln!("observe pipeline after the run: {report:?}");

    struct Discard;
    impl fastrace::collector::Reporter for Discard {
        fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
            black_box(spans);
        }
    }
    fastrace::set_reporter(Discard, fastrace::collector::Config::default());
    {
        let root = fastrace::Span::root("bench-root", fastrace::collector::SpanContext::random());
        let _parent = root.set_local_parent();
        group.bench_function("fastrace", |b| b.iter(|| with_fastrace(black_box(7))));
    }
    fastrace::flush();
    group.finish();
}

criterion_group!(benches, off, recording);
criterion_main!(benches);
