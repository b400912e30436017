//! Worker processes in one trace (the Ray, Celery or multiprocessing case):
//! `cargo run --example workers -- 4`.
//!
//! The same binary runs as the coordinator and, started again with `--worker <n>`, as each
//! worker. The coordinator sets the session and user, then hands each worker its trace context
//! with [`TraceContext::apply_to_with_keys`]: `TRACEPARENT` (the trace and the coordinator's span), `BAGGAGE`
//! (session, user, tags) and the coordinator's `LANGFUSE_*` settings. A worker's plain `init()`
//! picks all of it up: its observations land under the coordinator's span, in the coordinator's
//! session, for the same user. In Langfuse this is one trace with one subtree per worker.

use std::process::Command;

use observe_runtime::{current_trace, observe, TraceContext};

const CHUNKS_PER_WORKER: usize = 3;

#[observe(as_type = "embedding")]
fn embed(shard: usize, chunk: usize) -> Vec<f32> {
    vec![shard as f32, chunk as f32]
}

/// A worker's whole job: one subtree under the coordinator's span.
#[observe(name = "worker", as_type = "chain")]
fn run_shard(shard: usize) -> usize {
    (0..CHUNKS_PER_WORKER)
        .map(|chunk| embed(shard, chunk).len())
        .sum()
}

#[observe(name = "coordinator", as_type = "agent")]
fn coordinate(workers: usize) -> Result<usize, String> {
    current_trace()
        .session_id("nightly-index-2026-12-02")
        .user_id("indexing-bot")
        .tags(["batch"]);
    let context = TraceContext::current();
    let executable = std::env::current_exe().map_err(|e| e.to_string())?;
    let children: Vec<_> = (0..workers)
        .map(|shard| {
            let mut command = Command::new(&executable);
            command.args(["--worker", &shard.to_string()]);
            if let Some(context) = &context {
                context.apply_to_with_keys(&mut command);
            }
            command
                .spawn()
                .map_err(|e| format!("starting worker {shard}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for (shard, mut child) in children.into_iter().enumerate() {
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("worker {shard} failed: {status}"));
        }
    }
    Ok(workers * CHUNKS_PER_WORKER)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The guard flushes this process's spans when `main` returns, in the coordinator and in
    // every worker.
    let _guard = observe_runtime::init()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, shard] if flag == "--worker" => {
            run_shard(shard.parse()?);
        }
        [] => {
            coordinate(2)?;
        }
        [workers] => {
            coordinate(workers.parse()?)?;
        }
        _ => return Err("usage: workers [<number of workers>] | --worker <shard>".into()),
    }
    Ok(())
}
