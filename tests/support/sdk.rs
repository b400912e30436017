//! The SDK as the tests start it, the one part of the support that uses the runtime crate: the
//! keys the fake server knows, and a client for it that exports only when asked.

use std::time::Duration;

use observe_runtime::Config;

use super::FakeLangfuse;

/// The public key the fake server of [`fake_langfuse`] accepts.
pub const PUBLIC_KEY: &str = "pk-lf-test";
/// The secret key the fake server of [`fake_langfuse`] accepts.
pub const SECRET_KEY: &str = "sk-lf-test";

/// A fake Langfuse that accepts [`PUBLIC_KEY`] and [`SECRET_KEY`].
pub fn fake_langfuse() -> FakeLangfuse {
    FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY)
}

/// A client of `server` with the test keys that exports only when flushed (or when 512 spans
/// wait), with room for a slow machine (5 s per request, 10 s to shut down) and no debug output.
pub fn config_for(server: &FakeLangfuse) -> Config {
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(server.base_url())
        .flush_at(512)
        .flush_interval(Duration::from_secs(60))
        .timeout(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(10))
        .debug(false)
}

/// A mask for tests: any string that holds a live key (`sk-live…`) becomes `[redacted]`.
pub fn redact_live_keys(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains("sk-live") => Value::from("[redacted]"),
        Value::Array(items) => items.into_iter().map(redact_live_keys).collect(),
        Value::Object(object) => object
            .into_iter()
            .map(|(key, value)| (key, redact_live_keys(value)))
            .collect(),
        other => other,
    }
}
