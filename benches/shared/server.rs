//! A local OTLP endpoint that discards what it receives after counting it: the server the
//! pipeline benchmarks and `span_cost` export to. Included with `#[path]`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::traces::SPANS_PER_ROOT;

/// A std-only HTTP/1.1 server on 127.0.0.1: a thread per connection, keep-alive; reads each
/// request's `Content-Length` body, answers `200` with `{}`, and keeps the body. When a case
/// asks for the counts, the bodies kept are decoded (gunzip when `Content-Encoding: gzip`, then
/// the official `opentelemetry-proto` messages) and their spans counted per trace. What a case
/// delivered is this count, not the SDK's own.
///
/// Decoding waits until the case has ended (or [`PENDING_LIMIT`] bytes wait): the machine has
/// two cores, and decoding while the case ran slowed the code measured by half (the bursty case
/// from 150 ns to 225 ns per span, the same SDK), also at the lowest thread priority. The bodies
/// kept are in the RSS a case reports (their size is given beside it).
pub struct DiscardServer {
    pub url: String,
    received: Arc<Received>,
}

/// What the server received.
#[derive(Default)]
struct Received {
    requests: AtomicU64,
    bytes: AtomicU64,
    spans: AtomicU64,
    /// Bodies that did not decode as an OTLP export.
    undecodable: AtomicU64,
    /// Spans received per trace id, since the last [`DiscardServer::take_traces`].
    per_trace: Mutex<HashMap<Vec<u8>, u64>>,
    /// Bodies not decoded yet, and whether each is gzipped.
    pending: Mutex<Vec<(Vec<u8>, bool)>>,
    /// Their size.
    pending_bytes: AtomicU64,
}

/// Bodies waiting to be decoded beyond this size are decoded at once.
const PENDING_LIMIT: u64 = 1 << 30;

impl Received {
    /// Decodes and counts the bodies kept so far.
    fn decode_pending(&self) {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (body, gzip) in pending {
            self.pending_bytes
                .fetch_sub(body.len() as u64, Ordering::Relaxed);
            match count_spans(&body, gzip, self) {
                Some(spans) => self.spans.fetch_add(spans, Ordering::Relaxed),
                None => self.undecodable.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}

/// The server's counts when a case starts or ends.
#[derive(Clone, Copy)]
pub struct ServerCounts {
    pub requests: u64,
    pub bytes: u64,
    pub spans: u64,
    pub undecodable: u64,
}

impl DiscardServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the discard server");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let received = Arc::new(Received::default());
        let shared = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let received = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &received);
                });
            }
        });
        Self { url, received }
    }

    /// Bytes of bodies kept, not decoded yet.
    pub fn pending_bytes(&self) -> u64 {
        self.received.pending_bytes.load(Ordering::Relaxed)
    }

    /// Requests, body bytes, spans and undecodable bodies received so far.
    pub fn counts(&self) -> ServerCounts {
        let r = &self.received;
        r.decode_pending();
        ServerCounts {
            requests: r.requests.load(Ordering::Relaxed),
            bytes: r.bytes.load(Ordering::Relaxed),
            spans: r.spans.load(Ordering::Relaxed),
            undecodable: r.undecodable.load(Ordering::Relaxed),
        }
    }

    /// Traces received whole ([`SPANS_PER_ROOT`] spans) and in part since the last call; forgets
    /// them. (Not every benchmark that includes this file calls it.)
    #[allow(dead_code)]
    pub fn take_traces(&self) -> (u64, u64) {
        self.take_traces_of(SPANS_PER_ROOT)
    }

    /// [`Self::take_traces`], for traces of `spans_per_trace` spans.
    pub fn take_traces_of(&self, spans_per_trace: u64) -> (u64, u64) {
        self.received.decode_pending();
        let per_trace = std::mem::take(
            &mut *self
                .received
                .per_trace
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let whole = per_trace
            .values()
            .filter(|&&spans| spans == spans_per_trace)
            .count() as u64;
        (whole, per_trace.len() as u64 - whole)
    }
}

/// Decodes one export body and counts its spans, per trace; `None` if it is not an OTLP export.
fn count_spans(body: &[u8], gzip: bool, received: &Received) -> Option<u64> {
    use prost::Message as _;
    let plain;
    let bytes = if gzip {
        let mut out = Vec::with_capacity(body.len() * 8);
        flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut out)
            .ok()?;
        plain = out;
        plain.as_slice()
    } else {
        body
    };
    let export = ExportTraceServiceRequest::decode(bytes).ok()?;
    let mut spans = 0;
    let mut per_trace = received
        .per_trace
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for span in export
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
    {
        spans += 1;
        *per_trace.entry(span.trace_id.clone()).or_insert(0) += 1;
    }
    Some(spans)
}

fn serve(stream: TcpStream, received: &Received) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut line = String::new();
    loop {
        let mut length = 0usize;
        let mut gzip = false;
        let mut head_lines = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let text = line.trim_end();
            if text.is_empty() {
                if head_lines == 0 {
                    continue; // a stray line break between requests
                }
                break;
            }
            head_lines += 1;
            if let Some((name, value)) = text.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("content-encoding") {
                    gzip = value.trim().eq_ignore_ascii_case("gzip");
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        // Kept before the answer: when the client has its answer, the counts hold it.
        received
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((body, gzip));
        if received
            .pending_bytes
            .fetch_add(length as u64, Ordering::Relaxed)
            > PENDING_LIMIT
        {
            received.decode_pending();
        }
        received.requests.fetch_add(1, Ordering::Relaxed);
        received.bytes.fetch_add(length as u64, Ordering::Relaxed);
        writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )?;
    }
}
