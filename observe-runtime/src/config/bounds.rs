//! The ranges `init` accepts for durations and sizes, and the text that says so: one table read by
//! both the environment ([`Seconds::parse`], [`Count::parse`]) and validation of builder values
//! ([`Seconds::check`], [`Count::check`]), so a variable and its builder method agree. Owns the
//! bounds only: no reading of variables, no other checks.

use std::time::Duration;

use super::error::invalid;
use super::{ConfigError, DEFAULT_MAX_QUEUE, MAX_QUEUE_LIMIT};
use crate::capture::DEFAULT_FIELD_LIMIT;

/// The shortest duration accepted for a timeout or an interval: 1 ms. Below it no request could
/// finish and a timer would spin.
const MIN_SECONDS: f64 = 0.001;
/// The longest duration accepted: 1 hour. Beyond it a value is a mistake (milliseconds written
/// as seconds), and a program could hang at exit for longer than anyone waits.
const MAX_SECONDS: f64 = 3600.0;

/// A duration setting given in seconds.
pub(super) struct Seconds {
    /// The variable, also named for the builder method's value.
    pub(super) variable: &'static str,
    /// What the setting is, for the error text.
    meaning: &'static str,
}

/// `LANGFUSE_TIMEOUT` / `Config::timeout`.
pub(super) const TIMEOUT: Seconds = Seconds {
    variable: "LANGFUSE_TIMEOUT",
    meaning: "the time limit of one HTTP request",
};
/// `LANGFUSE_SHUTDOWN_TIMEOUT` / `Config::shutdown_timeout`.
pub(super) const SHUTDOWN_TIMEOUT: Seconds = Seconds {
    variable: "LANGFUSE_SHUTDOWN_TIMEOUT",
    meaning: "the longest flush and shutdown may take",
};
/// `LANGFUSE_FLUSH_INTERVAL` / `Config::flush_interval`.
pub(super) const FLUSH_INTERVAL: Seconds = Seconds {
    variable: "LANGFUSE_FLUSH_INTERVAL",
    meaning: "the longest a finished span waits before it is sent",
};

impl Seconds {
    fn accepts(seconds: f64) -> bool {
        (MIN_SECONDS..=MAX_SECONDS).contains(&seconds)
    }

    /// What the value must be instead.
    pub(super) fn expected(&self) -> String {
        format!(
            "expected seconds from 0.001 (1 ms) to 3600 (1 hour), {}, such as 5 or 0.5",
            self.meaning
        )
    }

    /// The duration written in `text`, if it is a number of seconds in range.
    pub(super) fn parse(&self, text: &str) -> Option<Duration> {
        let seconds: f64 = text.parse().ok()?;
        Self::accepts(seconds).then(|| Duration::from_secs_f64(seconds))
    }

    /// The error for a builder value out of range, shown in seconds.
    pub(super) fn check(&self, value: Duration) -> Option<ConfigError> {
        let seconds = value.as_secs_f64();
        (!Self::accepts(seconds))
            .then(|| invalid(self.variable, &seconds.to_string(), self.expected()))
    }
}

/// A size setting: a whole number of spans or bytes.
pub(super) struct Count {
    /// The variable, also named for the builder method's value.
    pub(super) variable: &'static str,
    unit: &'static str,
    min: usize,
    max: usize,
    example: usize,
}

/// `LANGFUSE_FLUSH_AT` / `Config::flush_at`: at most 100,000 spans a request (requests are split
/// at about 3.5 MB anyway).
pub(super) const FLUSH_AT: Count = Count {
    variable: "LANGFUSE_FLUSH_AT",
    unit: "spans",
    min: 1,
    max: 100_000,
    example: 512,
};
/// `LANGFUSE_MAX_QUEUE` / `Config::max_queue`.
pub(super) const MAX_QUEUE: Count = Count {
    variable: "LANGFUSE_MAX_QUEUE",
    unit: "spans",
    min: 1,
    max: MAX_QUEUE_LIMIT,
    example: DEFAULT_MAX_QUEUE,
};
/// `LANGFUSE_MAX_FIELD_SIZE` / `Config::max_field_bytes`: from 256 bytes (room for the
/// truncation marker) to 3,000,000 (a span with a full field still fits one request).
pub(super) const MAX_FIELD_SIZE: Count = Count {
    variable: "LANGFUSE_MAX_FIELD_SIZE",
    unit: "bytes",
    min: 256,
    max: 3_000_000,
    example: DEFAULT_FIELD_LIMIT,
};

impl Count {
    fn accepts(&self, value: usize) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// What the value must be instead.
    pub(super) fn expected(&self) -> String {
        format!(
            "expected a whole number of {} from {} to {}, such as {}",
            self.unit, self.min, self.max, self.example
        )
    }

    /// The number written in `text`, if it is in range.
    pub(super) fn parse(&self, text: &str) -> Option<usize> {
        text.parse().ok().filter(|value| self.accepts(*value))
    }

    /// The error for a builder value out of range.
    pub(super) fn check(&self, value: usize) -> Option<ConfigError> {
        (!self.accepts(value)).then(|| invalid(self.variable, &value.to_string(), self.expected()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_inclusive_and_refuse_what_cannot_work() {
        assert_eq!(TIMEOUT.parse("0.001"), Some(Duration::from_millis(1)));
        assert_eq!(TIMEOUT.parse("3600"), Some(Duration::from_secs(3600)));
        for bad in ["0", "1e-12", "0.0009", "3600.5", "-1", "NaN", "inf", "5s"] {
            assert_eq!(TIMEOUT.parse(bad), None, "{bad}");
        }
        assert!(TIMEOUT.check(Duration::from_millis(1)).is_none());
        assert!(TIMEOUT.check(Duration::from_nanos(999_999)).is_some());
        assert_eq!(MAX_QUEUE.parse("10000000"), Some(MAX_QUEUE_LIMIT));
        assert_eq!(MAX_FIELD_SIZE.parse("255"), None);
        assert_eq!(MAX_FIELD_SIZE.parse("256"), Some(256));
        assert!(FLUSH_AT.check(100_001).is_some());
    }
}
