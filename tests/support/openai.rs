//! A fake OpenAI-compatible server on 127.0.0.1: it answers each request with the next reply of
//! its script (a JSON body with any status, or server-sent events written as HTTP chunks with
//! delays, optionally cut off before the end) and records the requests it received. One request
//! per connection (`Connection: close`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status and extra headers.
    Json {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// `text/event-stream`: each event after its delay, as one HTTP chunk; `cut` closes the
    /// connection after the events without ending the chunked body.
    Sse {
        events: Vec<(Duration, String)>,
        cut: bool,
    },
}

impl Reply {
    /// 200 with this JSON body.
    pub fn json(body: serde_json::Value) -> Reply {
        Reply::status(200, body)
    }

    /// This status with this JSON body.
    pub fn status(status: u16, body: serde_json::Value) -> Reply {
        Reply::Json {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Json { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Server-sent events: each `data:` payload after `delay`, then `data: [DONE]`.
    pub fn sse(payloads: &[serde_json::Value], delay: Duration) -> Reply {
        let mut events: Vec<(Duration, String)> = payloads
            .iter()
            .map(|payload| (delay, format!("data: {payload}\n\n")))
            .collect();
        events.push((delay, "data: [DONE]\n\n".to_string()));
        Reply::Sse { events, cut: false }
    }

    /// Server-sent events without `[DONE]`, the connection cut after the last one.
    pub fn sse_cut(payloads: &[serde_json::Value], delay: Duration) -> Reply {
        let events = payloads
            .iter()
            .map(|payload| (delay, format!("data: {payload}\n\n")))
            .collect();
        Reply::Sse { events, cut: true }
    }

    /// Server-sent events of the Responses API (`event:` and `data:` lines), ending with the
    /// last one (no `[DONE]`).
    pub fn response_events(payloads: &[serde_json::Value], delay: Duration) -> Reply {
        let events = payloads
            .iter()
            .map(|payload| {
                let kind = payload["type"].as_str().unwrap_or("message");
                (delay, format!("event: {kind}\ndata: {payload}\n\n"))
            })
            .collect();
        Reply::Sse { events, cut: false }
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct OpenAiRequest {
    pub method: String,
    pub path: String,
    pub body: String,
}

impl OpenAiRequest {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON request body")
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    requests: Vec<OpenAiRequest>,
}

/// The fake OpenAI server; stops accepting when dropped.
pub struct FakeOpenAi {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeOpenAi {
    /// Starts a server on a free port of 127.0.0.1 that answers with `script`, in order, and
    /// with 500 once the script is used up.
    pub fn start(script: impl IntoIterator<Item = Reply>) -> FakeOpenAi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake OpenAI server");
        let address = listener.local_addr().expect("its address");
        let state = Arc::new(Mutex::new(State {
            script: script.into_iter().collect(),
            requests: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        thread::Builder::new()
            .name("fake-openai-accept".into())
            .spawn(move || {
                for connection in listener.incoming() {
                    let Ok(connection) = connection else { continue };
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || {
                        let _ = serve(connection, &shared);
                    });
                }
            })
            .expect("spawn the accept thread");
        FakeOpenAi { address, state }
    }

    /// `http://127.0.0.1:PORT/v1`, the API base for async-openai.
    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<OpenAiRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serve(connection: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(connection.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let reply = {
        let mut state = lock(state);
        state.requests.push(OpenAiRequest {
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        state.script.pop_front()
    };
    let mut out = connection;
    match reply {
        None => write_json(
            &mut out,
            500,
            "{\"error\":{\"message\":\"script used up\"}}",
            &[],
        ),
        Some(Reply::Json {
            status,
            body,
            headers,
        }) => write_json(&mut out, status, &body, &headers),
        Some(Reply::Sse { events, cut }) => {
            out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            )?;
            out.flush()?;
            for (delay, event) in events {
                thread::sleep(delay);
                write!(out, "{:x}\r\n{event}\r\n", event.len())?;
                out.flush()?;
            }
            if cut {
                // Gone without the last chunk: the client sees a broken body.
                out.shutdown(std::net::Shutdown::Both)
            } else {
                out.write_all(b"0\r\n\r\n")?;
                out.flush()
            }
        }
    }
}

fn write_json(
    out: &mut TcpStream,
    status: u16,
    body: &str,
    headers: &[(String, String)],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}
