"""Times the Langfuse Python SDK's ``@observe`` the way ``benches/pipeline.rs`` times observe.

Run through ``run.sh`` (it makes the venv and starts the server). Two roles:

``bench_observe.py serve PORT_FILE``
    A local OTLP/HTTP endpoint that answers every request ``200 {}``; it decodes each trace
    export (gzip + protobuf) to count the spans it received, and tells the counts on
    ``GET /stats``. It runs in its own process, so decoding does not take the benchmark's GIL.

``bench_observe.py run CASE --port PORT [--seconds S]``
    One case per process (the SDK keeps one client per public key):

    - ``disabled``: a plain function and an ``@observe`` function, one call at a time, with the
      SDK's own switch off (``Langfuse(tracing_enabled=False)``).
    - ``enabled_bursty``: ``@observe(capture_input=False, capture_output=False)``, traces of a
      root with 100 children, ``langfuse.flush()`` outside the timed region every 50 roots.
    - ``sustained``: the same, never flushed while timing.
    - ``capture``: ``@observe()`` with input and output captured (an int argument and return
      value), flushed every 50 roots.

    Each sample times 50 roots (5,050 spans); the figure is the time per span, the median over
    the samples (the first sample is a warm-up and not counted). After each case a ``delivered``
    line compares the spans created with the spans the server received.
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import threading
import time
import urllib.request

CHILDREN = 100
SPANS_PER_ROOT = CHILDREN + 1
BURST = 50


def serve(port_file):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    counts = {"requests": 0, "bytes": 0, "spans": 0, "undecodable": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, body=b"{}"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            spans, undecodable = 0, 0
            if self.path.endswith("/v1/traces"):
                try:
                    data = body
                    if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                        data = gzip.decompress(body)
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(data)
                    spans = sum(
                        len(scope.spans)
                        for resource in request.resource_spans
                        for scope in resource.scope_spans
                    )
                except Exception:
                    undecodable = 1
            with lock:
                counts["requests"] += 1
                counts["bytes"] += length
                counts["spans"] += spans
                counts["undecodable"] += undecodable
            self.answer()

        def do_GET(self):
            if self.path == "/stats":
                with lock:
                    body = json.dumps(counts).encode()
                self.answer(body)
            else:
                self.answer()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    temporary = port_file + ".tmp"
    with open(temporary, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(temporary, port_file)
    server.serve_forever()


def server_stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        return json.load(response)


def per_span_us(elapsed_ns, spans):
    return elapsed_ns / spans / 1000


def summary(samples):
    return (
        f"median {statistics.median(samples):.2f} us, mean {statistics.fmean(samples):.2f} us, "
        f"min {min(samples):.2f} us, max {max(samples):.2f} us over {len(samples)} samples"
    )


def plain(x):
    return (x * 31) & 0xFFFFFFFFFFFFFFFF


def run(case, port, seconds):
    # Only what this script sets: no LANGFUSE_* or OTEL_* from the caller's environment.
    for name in list(os.environ):
        if name.startswith(("LANGFUSE_", "OTEL_")):
            del os.environ[name]

    from importlib.metadata import version

    from langfuse import Langfuse, observe

    print(f"python {sys.version.split()[0]}, langfuse {version('langfuse')}", flush=True)

    if case == "disabled":
        client = Langfuse(
            public_key="pk-lf-bench",
            secret_key="sk-lf-bench",
            base_url=f"http://127.0.0.1:{port}",
            tracing_enabled=False,
        )

        @observe
        def observed(x):
            return plain(x)

        for name, fn in (("plain_fn", plain), ("observe", observed)):
            calls = 10_000
            while True:  # calibrate: one sample takes about 0.1 s
                start = time.perf_counter_ns()
                for i in range(calls):
                    fn(i)
                if time.perf_counter_ns() - start > 100_000_000:
                    break
                calls *= 2
            samples = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline or len(samples) < 10:
                start = time.perf_counter_ns()
                for i in range(calls):
                    fn(i)
                samples.append(per_span_us(time.perf_counter_ns() - start, calls))
            print(f"python/disabled/{name}: per call {summary(samples)}", flush=True)
        client.shutdown()
        return

    client = Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        base_url=f"http://127.0.0.1:{port}",
    )

    capture = case == "capture"

    @observe(capture_input=capture, capture_output=capture)
    def child(x):
        return plain(x)

    @observe(capture_input=capture, capture_output=capture)
    def root(x):
        acc = x
        for i in range(CHILDREN):
            acc ^= child(i)
        return acc

    name = {
        "enabled_bursty": "enabled_bursty/observe",
        "sustained": "sustained/observe",
        "capture": "capture/observe_int_arg_and_ret",
    }[case]
    bursty = case != "sustained"

    before = server_stats(port)
    roots = 0
    samples = []
    flush_ns = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline or len(samples) < 11:
        start = time.perf_counter_ns()
        for i in range(BURST):
            root(i)
        samples.append(per_span_us(time.perf_counter_ns() - start, BURST * SPANS_PER_ROOT))
        roots += BURST
        if bursty:
            flush_start = time.perf_counter_ns()
            client.flush()
            flush_ns += time.perf_counter_ns() - flush_start
    ran = time.monotonic() - started
    samples = samples[1:]  # the first is a warm-up
    print(f"python/{name}: per span {summary(samples)}", flush=True)

    shutdown_start = time.monotonic()
    client.flush()
    client.shutdown()
    shutdown = time.monotonic() - shutdown_start
    time.sleep(0.2)  # the server counts a request after it has answered it
    after = server_stats(port)
    created = roots * SPANS_PER_ROOT
    received = after["spans"] - before["spans"]
    print(
        f"delivered python/{name}: created {created}, server received {received}, "
        f"missing {created - received}; {after['requests'] - before['requests']} requests, "
        f"{after['bytes'] - before['bytes']} bytes, {after['undecodable'] - before['undecodable']} "
        f"undecodable; flushes took {flush_ns / 1e9:.1f} s, final flush and shutdown "
        f"{shutdown:.2f} s, case ran {ran:.1f} s",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port_file")
    r = sub.add_parser("run")
    r.add_argument("case", choices=["disabled", "enabled_bursty", "sustained", "capture"])
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.role == "serve":
        serve(args.port_file)
    else:
        run(args.case, args.port, args.seconds)


if __name__ == "__main__":
    main()
