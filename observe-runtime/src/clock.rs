//! Time for spans: a cheap monotonic reading on the hot path ([`Ticks`], the CPU's time-stamp
//! counter where it is reliable, else the monotonic clock), its conversion to Unix time off the
//! hot path ([`UnixClock`]), re-anchored to the wall clock every second so that long runs keep
//! wall-clock accuracy, and Unix times as ISO-8601 text. Knows nothing about spans.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A monotonic instant read on the hot path: a few nanoseconds, no system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticks(minstant::Instant);

impl Ticks {
    /// Now.
    #[inline]
    pub(crate) fn now() -> Self {
        Self(minstant::Instant::now())
    }

    /// The instant `after` this one.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn after(self, after: Duration) -> Self {
        Self(self.0 + after)
    }
}

/// How long an anchor is trusted before it is taken again.
const REANCHOR_AFTER: Duration = Duration::from_secs(1);

/// Converts [`Ticks`] to nanoseconds since the Unix epoch, from an anchor (a wall-clock reading
/// taken together with a tick reading) that is renewed every second.
pub(crate) struct UnixClock {
    anchor: minstant::Anchor,
    taken: minstant::Instant,
}

impl UnixClock {
    pub(crate) fn new() -> Self {
        Self {
            anchor: minstant::Anchor::new(),
            taken: minstant::Instant::now(),
        }
    }

    /// Takes a new anchor when the current one is older than a second: the tick rate and the
    /// wall clock (NTP adjusts it) drift apart slowly, and this keeps the error to that drift over
    /// the age of a span, not over the age of the process.
    pub(crate) fn refresh(&mut self) {
        if self.taken.elapsed() >= REANCHOR_AFTER {
            *self = Self::new();
        }
    }

    /// Nanoseconds since the Unix epoch at `ticks`.
    pub(crate) fn unix_nanos(&self, ticks: Ticks) -> u64 {
        ticks.0.as_unix_nanos(&self.anchor)
    }
}

/// Nanoseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

/// A Unix time in nanoseconds as ISO-8601 UTC (`2026-11-25T14:44:04.123456Z`), always 27 ASCII
/// bytes (a `u64` of nanoseconds ends in 2554).
pub(crate) fn iso8601(unix_nanos: u64) -> [u8; 27] {
    let seconds = unix_nanos / 1_000_000_000;
    let micros = (unix_nanos % 1_000_000_000) / 1_000;
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, digits: usize, mut value: u64| {
        for byte in text[at..at + digits].iter_mut().rev() {
            *byte = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rest / 3600);
    put(14, 2, rest % 3600 / 60);
    put(17, 2, rest % 60);
    put(20, 6, micros);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_wall_clock() {
        let clock = UnixClock::new();
        let before = unix_nanos(SystemTime::now());
        let ticks = Ticks::now();
        let after = unix_nanos(SystemTime::now());
        let converted = clock.unix_nanos(ticks);
        // Within a millisecond of the wall-clock readings around it.
        assert!(converted + 1_000_000 >= before, "{converted} vs {before}");
        assert!(converted <= after + 1_000_000, "{converted} vs {after}");
    }

    #[test]
    fn later_ticks_are_later() {
        let clock = UnixClock::new();
        let first = Ticks::now();
        std::thread::sleep(Duration::from_millis(2));
        let second = Ticks::now();
        let gap = clock.unix_nanos(second) - clock.unix_nanos(first);
        assert!(gap >= 1_500_000, "{gap}");
    }
}
