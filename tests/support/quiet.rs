//! "Nothing more will happen", as a condition instead of a fixed sleep: the fake server's request
//! counter stays unchanged, with no request waiting for its answer, across a flush and one retry
//! interval.

use std::thread;
use std::time::{Duration, Instant};

use super::server::FakeLangfuse;

/// Longer than any first retry of a failed request: 500 ms of backoff plus at most half of it as
/// jitter. A retry, a second copy or a timer's export that is still coming arrives within it.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long the server may stay busy before the wait gives up and fails the test.
const LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// Waits until `server` is quiet: `flush` runs (pass `|| {}` when nothing may be flushed, for
/// example after the client's process ended), every request has its answer, and the request
/// counter is the same before the flush and one [`RETRY_INTERVAL`] after it. Repeats while
/// requests keep coming; panics if the server is still busy after 30 s. Returns the number of
/// requests the server received.
pub fn wait_until_quiet(server: &FakeLangfuse, mut flush: impl FnMut()) -> usize {
    let limit = Instant::now() + LIMIT;
    loop {
        let before = server.request_count();
        flush();
        while server.has_pending_request() {
            assert!(
                Instant::now() < limit,
                "a request is still waiting for its answer after {LIMIT:?}"
            );
            thread::sleep(POLL);
        }
        thread::sleep(RETRY_INTERVAL);
        let after = server.request_count();
        if after == before && !server.has_pending_request() {
            return after;
        }
        assert!(
            Instant::now() < limit,
            "the server still receives requests after {LIMIT:?} ({before} then {after})"
        );
    }
}
