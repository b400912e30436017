//! Prompt management: a cached `get_prompt` hit (a hash lookup under a read lock and a reference
//! count), the same hit from 16 threads at once (the wall time of all calls divided by their
//! number, so on N cores it can be up to N times lower than one thread's), and an uncached fetch from the fake Langfuse
//! server on 127.0.0.1 (TTL zero: one HTTP request each), side by side.
//!
//! `cargo bench --bench prompts`
//!
//! Prints the requests the server answered, so a hit that went to the server would show.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use observe_runtime::{get_prompt, Config};
use serde_json::json;

#[path = "../tests/support/mod.rs"]
mod support;

use support::FakeLangfuse;

const NAME: &str = "support/answer";
const THREADS: usize = 16;

fn prompts(c: &mut Criterion) {
    let server = FakeLangfuse::start("pk-lf-bench", "sk-lf-bench");
    server.put_prompt(json!({
        "name": NAME, "version": 3, "labels": ["production"],
        "prompt": [{"role": "system", "content": "You are {{persona}}."},
                   {"role": "user", "content": "{{question}}"}]
    }));
    let _guard = Config::default()
        .public_key("pk-lf-bench")
        .secret_key("sk-lf-bench")
        .base_url(server.base_url())
        .prompt_cache_ttl(Duration::from_secs(3600))
        .init()
        .expect("init");
    get_prompt(NAME).fetch().expect("the first fetch");
    let before = server.prompt_request_count();

    let mut group = c.benchmark_group("prompts");
    group.bench_function("cached hit", |b| {
        b.iter(|| black_box(get_prompt(black_box(NAME)).fetch().expect("cached")))
    });
    group.bench_function("cached hit, 16 threads at once (wall time per call)", |b| {
        b.iter_custom(|iterations| {
            let per_thread = iterations.div_ceil(THREADS as u64);
            let barrier = Arc::new(Barrier::new(THREADS));
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let barrier = barrier.clone();
                    thread::spawn(move || {
                        barrier.wait();
                        let started = Instant::now();
                        for _ in 0..per_thread {
                            black_box(get_prompt(NAME).fetch().expect("cached"));
                        }
                        started.elapsed()
                    })
                })
                .collect();
            // The wall time of all the calls: the slowest thread's.
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .max()
                .unwrap_or_default()
        })
    });
    let hits_sent = server.prompt_request_count() - before;
    group.bench_function("uncached fetch from 127.0.0.1", |b| {
        b.iter(|| {
            black_box(
                get_prompt(NAME)
                    .cache_ttl(Duration::ZERO)
                    .fetch()
                    .expect("fetched"),
            )
        })
    });
    group.finish();
    println!(
        "requests the server answered: {} (cached hits sent {hits_sent})",
        server.prompt_request_count()
    );
}

criterion_group!(benches, prompts);
criterion_main!(benches);
