//! `observe_openai`'s own cost: the same async-openai client with and without `ObserveLayer`,
//! both against an OpenAI-compatible server in this benchmark on 127.0.0.1 (keep-alive, one
//! thread per connection): a non-streamed chat completion per call, and a streamed one of
//! `CHUNKS` chunks (throughput in chunks, so criterion's time is per chunk). The observed client
//! exports as an application's does: the exporter thread encodes the generations and sends them
//! over OTLP/HTTP to the same server, which keeps them and, after each flush, outside the times
//! measured, decodes them with `opentelemetry-proto` and counts them; capture on (input and
//! output serialized). `openai/layer/*` measure the layer alone: its service over one that
//! answers at once, without a network.
//!
//! `cargo bench --bench openai` (`cargo bench --bench openai -- nomatch`: only the paired part;
//! `CASE=call` or `CASE=stream`: only that paired case; `ONLY=plain` or `ONLY=observed`: the
//! same client for both blocks of a pair, to see what the pairing itself adds; `ROUNDS`: rounds
//! other than 101). `benches/openai_cost.sh` counts the instructions the layer adds per call.
//!
//! After each case a `delivered` line gives the calls made, the generations the server received,
//! the server's chat requests and the connections it accepted, so a case that recorded nothing
//! (or called nothing, or opened a connection per call) would show. Then `paired` lines: blocks
//! with and without the layer one after the other, the differences in wall time (to the last
//! answer, as the callers saw it, and with the flush that ends the block, which waits for what
//! the exporter has left), the process's CPU time (the exporter's and the server's included) and
//! this thread's CPU time, and a `delivered` line for the pairs.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt as _;
use observe_openai::async_openai::config::OpenAIConfig;
use observe_openai::async_openai::error::OpenAIError;
use observe_openai::async_openai::middleware::HttpRequestFactory;
use observe_openai::async_openai::middleware::{retry::OpenAIRetryLayer, ReqwestService};
use observe_openai::async_openai::types::chat::CreateChatCompletionRequest;
use observe_openai::async_openai::Client;
use observe_openai::ObserveLayer;
use observe_runtime::Config;
use serde_json::json;

/// Rounds of the paired blocks (the medians are taken over them); `ROUNDS` sets another number
/// (`benches/openai_cost.sh` counts instructions over a few).
fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(101)
}

/// Chunks in one streamed answer.
const CHUNKS: u64 = 500;

fn answer() -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Paris is the capital of France."}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,
                  "prompt_tokens_details": {"cached_tokens": 1024}}
    })
    .to_string()
}

/// The whole streamed body, HTTP chunks included: `CHUNKS` deltas, a usage chunk, `[DONE]`.
fn stream_body() -> Vec<u8> {
    let mut body = Vec::new();
    let mut event = |data: String| {
        let event = format!("data: {data}\n\n");
        body.extend_from_slice(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
    };
    for i in 0..CHUNKS {
        event(
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000,
                   "model": "gpt-4o-mini-2024-07-18",
                   "choices": [{"index": 0, "delta": {"content": format!(" token{i}")},
                                "finish_reason": null}]})
            .to_string(),
        );
    }
    event(
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000,
               "model": "gpt-4o-mini-2024-07-18", "choices": [],
               "usage": {"prompt_tokens": 20, "completion_tokens": 500, "total_tokens": 520}})
        .to_string(),
    );
    event("[DONE]".to_string());
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

/// Connections the server accepted (a client that reuses its connections opens few).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// The export bodies the server received and has not decoded yet, with whether each is gzip.
/// They are decoded after each flush ([`spans_received`]), outside the times measured:
/// decoding is Langfuse's work, not the application's, and on this machine's two cores it would
/// compete with the calls measured.
static EXPORTS: Mutex<Vec<(Vec<u8>, bool)>> = Mutex::new(Vec::new());
/// Spans in the export bodies decoded so far.
static SPANS_RECEIVED: AtomicU64 = AtomicU64::new(0);

/// The spans the server has received from the exporter so far, decoded with
/// `opentelemetry-proto` (the bodies waiting are decoded now).
fn spans_received() -> u64 {
    let exports = std::mem::take(&mut *EXPORTS.lock().expect("the exports"));
    let decoded: u64 = exports
        .iter()
        .map(|(body, gzip)| count_spans(body, *gzip))
        .sum();
    SPANS_RECEIVED.fetch_add(decoded, Ordering::Relaxed) + decoded
}

/// The spans in one OTLP export body (gzip or not); 0 when it does not decode.
fn count_spans(body: &[u8], gzip: bool) -> u64 {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    let mut plain = Vec::new();
    let bytes = if gzip {
        if flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut plain)
            .is_err()
        {
            return 0;
        }
        &plain[..]
    } else {
        body
    };
    ExportTraceServiceRequest::decode(bytes).map_or(0, |export| {
        export
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len() as u64)
            .sum()
    })
}

/// Starts the server; returns its API base and its request counter.
fn start_server() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    let answer = Arc::new(answer());
    let stream = Arc::new(stream_body());
    std::thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            let (counter, answer, stream) = (counter.clone(), answer.clone(), stream.clone());
            std::thread::spawn(move || serve(connection, &counter, &answer, &stream));
        }
    });
    (format!("http://{address}/v1"), requests)
}

/// Answers requests on one connection until the client closes it.
fn serve(connection: TcpStream, requests: &AtomicU64, answer: &str, stream: &[u8]) {
    let _ = connection.set_nodelay(true);
    let mut reader = BufReader::new(connection.try_clone().expect("clone"));
    let mut out = connection;
    loop {
        let mut length = 0usize;
        let mut gzip = false;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let otlp = line.contains("/otel/");
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if name.eq_ignore_ascii_case("content-encoding") {
                    gzip = value.trim().eq_ignore_ascii_case("gzip");
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if otlp {
            EXPORTS.lock().expect("the exports").push((body, gzip));
            let answered = out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            );
            if answered.is_err() {
                return;
            }
            continue;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let streamed = body.windows(13).any(|w| w == b"\"stream\":true");
        let written = if streamed {
            out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            )
            .and_then(|()| out.write_all(stream))
        } else {
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            )
        };
        if written.is_err() {
            return;
        }
    }
}

fn request(stream: bool) -> CreateChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "gpt-4o-mini", "stream": stream, "temperature": 0.2, "max_completion_tokens": 64,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Capital of France?"}]
    }))
    .expect("a request")
}

async fn call(client: &Client<OpenAIConfig>) {
    let answer = client
        .chat()
        .create(request(false))
        .await
        .expect("an answer");
    black_box(answer);
}

async fn stream(client: &Client<OpenAIConfig>) {
    let mut stream = client
        .chat()
        .create_stream(request(true))
        .await
        .expect("a stream");
    let mut chunks = 0u64;
    while let Some(chunk) = stream.next().await {
        black_box(chunk.expect("a chunk"));
        chunks += 1;
    }
    assert_eq!(chunks, CHUNKS + 1, "the deltas and the usage chunk");
}

/// A client exporting to the benchmark's server (`base`, the server's root), as an application
/// runs it: the exporter thread encodes and sends.
fn observe_client(base: &str) -> observe_runtime::FlushGuard {
    Config::default()
        .public_key("pk-lf-bench")
        .secret_key("sk-lf-bench")
        .base_url(base)
        .init()
        .expect("init")
}

fn openai(c: &mut Criterion) {
    let (api_base, requests) = start_server();
    let _guard = observe_client(api_base.trim_end_matches("/v1"));
    let config = OpenAIConfig::new()
        .with_api_base(api_base)
        .with_api_key("sk-bench");
    let http = reqwest::Client::new();
    let plain = Client::with_config(config.clone()).with_http_service(
        tower::ServiceBuilder::new()
            .layer(OpenAIRetryLayer::default())
            .service(ReqwestService::new(http.clone())),
    );
    let observed = Client::with_config(config).with_http_service(
        tower::ServiceBuilder::new()
            .layer(ObserveLayer::new())
            .layer(OpenAIRetryLayer::default())
            .service(ReqwestService::new(http)),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let mut group = c.benchmark_group("openai");
    for (case, streamed) in [("call", false), ("stream", true)] {
        if streamed {
            group.throughput(Throughput::Elements(CHUNKS));
        } else {
            group.throughput(Throughput::Elements(1));
        }
        for (name, client) in [("plain", &plain), ("observed", &observed)] {
            let id = format!("{case}/{name}");
            let calls = AtomicU64::new(0);
            let received = spans_received();
            let before = requests.load(Ordering::Relaxed);
            let connections = CONNECTIONS.load(Ordering::Relaxed);
            let started = Instant::now();
            group.bench_function(&id, |b| {
                b.iter_custom(|iterations| {
                    let elapsed = runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iterations {
                            if streamed {
                                stream(client).await;
                            } else {
                                call(client).await;
                            }
                        }
                        started.elapsed()
                    });
                    calls.fetch_add(iterations, Ordering::Relaxed);
                    observe_runtime::flush().expect("flush");
                    spans_received();
                    elapsed
                })
            });
            eprintln!(
                "delivered {id}: {} calls, {} generations received, {} requests answered on {} \
                 connections, {:.1} s",
                calls.load(Ordering::Relaxed),
                spans_received() - received,
                requests.load(Ordering::Relaxed) - before,
                CONNECTIONS.load(Ordering::Relaxed) - connections,
                started.elapsed().as_secs_f64()
            );
        }
    }
    group.finish();

    // Paired: blocks of the same work with and without the layer, one after the other, so that
    // what the shared machine does meanwhile hits both alike; the median of the differences.
    // Besides the wall time (to the last answer, and with the flush), the CPU time of the
    // process (this thread, the exporter's and the server's: the server's work is the same in
    // both) and of this thread alone, which other programs on the machine do not inflate.
    let case_wanted = std::env::var("CASE").unwrap_or_default();
    for (case, streamed, block) in [("call", false, 400u32), ("stream", true, 20u32)] {
        if !case_wanted.is_empty() && case_wanted != case {
            continue;
        }
        let mut differences: [Vec<f64>; 4] = Default::default();
        let mut plain_times: [Vec<f64>; 4] = Default::default();
        let received = spans_received();
        let before = requests.load(Ordering::Relaxed);
        let rounds = rounds();
        for round in 0..rounds {
            let time = |client: &Client<OpenAIConfig>| {
                runtime.block_on(async {
                    let started = (Instant::now(), cpu_time(PROCESS), cpu_time(THREAD));
                    for _ in 0..block {
                        if streamed {
                            stream(client).await;
                        } else {
                            call(client).await;
                        }
                    }
                    // What the calls took as their callers saw it: the exporter works beside
                    // them, and what it has left is done at the flush (the second clock).
                    let answered = started.0.elapsed();
                    observe_runtime::flush().expect("flush");
                    let per_call = f64::from(block);
                    [
                        answered.as_secs_f64() / per_call,
                        started.0.elapsed().as_secs_f64() / per_call,
                        (cpu_time(PROCESS) - started.1) / per_call,
                        (cpu_time(THREAD) - started.2) / per_call,
                    ]
                })
            };
            let only = std::env::var("ONLY").unwrap_or_default();
            let plain_client = if only == "observed" {
                &observed
            } else {
                &plain
            };
            let observed_client = if only == "plain" { &plain } else { &observed };
            // Each goes first in every other round: neither always follows the other's flush.
            let (plain_time, observed_time) = if round % 2 == 0 {
                let plain_time = time(plain_client);
                (plain_time, time(observed_client))
            } else {
                let observed_time = time(observed_client);
                (time(plain_client), observed_time)
            };
            // The exports of the round decoded after both its blocks.
            spans_received();
            for i in 0..4 {
                differences[i].push(observed_time[i] - plain_time[i]);
                plain_times[i].push(plain_time[i]);
            }
        }
        eprintln!(
            "delivered paired {case}: {} calls with the layer and as many without, {} \
             generations received, {} requests answered",
            u64::from(block) * rounds as u64,
            spans_received() - received,
            requests.load(Ordering::Relaxed) - before,
        );
        let median = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        for (i, what) in [
            "wall to the last answer",
            "wall with the flush",
            "process CPU",
            "this thread's CPU",
        ]
        .iter()
        .enumerate()
        {
            let difference = median(&mut differences[i]);
            let plain_time = median(&mut plain_times[i]);
            let per_chunk = if streamed {
                format!(", {:.0} ns per chunk", difference * 1e9 / CHUNKS as f64)
            } else {
                String::new()
            };
            eprintln!(
                "paired {case}, {what}: plain {:.1} µs, layer adds {:.2} µs ({:.1} %){per_chunk}",
                plain_time * 1e6,
                difference * 1e6,
                difference / plain_time * 100.0
            );
        }
    }
}

const PROCESS: libc::clockid_t = libc::CLOCK_PROCESS_CPUTIME_ID;
const THREAD: libc::clockid_t = libc::CLOCK_THREAD_CPUTIME_ID;

/// CPU time of the process or of this thread, in seconds.
fn cpu_time(clock: libc::clockid_t) -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// A service that answers every request at once with the prepared answer, without a network:
/// the layer's own cost is the difference with and without it around this service.
#[derive(Clone)]
struct Canned(Arc<String>);

impl tower::Service<HttpRequestFactory> for Canned {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<reqwest::Response, OpenAIError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), OpenAIError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let answer = (*self.0).clone();
        Box::pin(async move {
            black_box(factory.build().await?);
            let response = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(reqwest::Body::from(answer))
                .expect("a response");
            Ok(reqwest::Response::from(response))
        })
    }
}

fn layer_alone(c: &mut Criterion) {
    let (api_base, _) = start_server();
    let _guard = observe_client(api_base.trim_end_matches("/v1"));
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&request(false)).expect("a body");
    let factory = HttpRequestFactory::new(move || {
        let request = http
            .post("http://127.0.0.1:1/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body.clone())
            .build()
            .map_err(OpenAIError::Reqwest);
        async move { request }
    });
    let canned = Canned(Arc::new(answer()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("openai/layer");
    let calls = AtomicU64::new(0);
    let received = spans_received();
    for observed in [false, true] {
        let name = if observed { "with" } else { "without" };
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                // Blocks of calls, each followed by a flush outside the time measured, so that
                // the exporter keeps up and every generation is delivered (none dropped).
                let mut elapsed = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let block = left.min(1000);
                    left -= block;
                    elapsed += runtime.block_on(async {
                        use tower::{Layer as _, Service as _};
                        let mut plain = canned.clone();
                        let mut layered = ObserveLayer::new().layer(canned.clone());
                        let started = Instant::now();
                        for _ in 0..block {
                            let response = if observed {
                                layered.call(factory.clone()).await
                            } else {
                                plain.call(factory.clone()).await
                            };
                            let bytes = response.expect("a response").bytes().await;
                            black_box(bytes.expect("a body"));
                        }
                        started.elapsed()
                    });
                    observe_runtime::flush().expect("flush");
                    spans_received();
                }
                if observed {
                    calls.fetch_add(iterations, Ordering::Relaxed);
                }
                elapsed
            })
        });
    }
    group.finish();
    eprintln!(
        "delivered layer/with: {} calls, {} generations received",
        calls.load(Ordering::Relaxed),
        spans_received() - received
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = layer_alone, openai
}
criterion_main!(benches);
