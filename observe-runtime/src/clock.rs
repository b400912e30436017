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

/// Nanoseconds since the Unix epoch of an ISO-8601 time with a date, a time and a zone
/// (`2026-12-02T14:44:04.123456Z`, `2026-12-02T15:44:04+01:00`); `None` for anything else.
#[cfg(feature = "tracing")]
pub(crate) fn unix_nanos_of_iso8601(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let bytes = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if bytes.len() < 20
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || separators.iter().any(|&(at, byte)| bytes[at] != byte)
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let length = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if length == 0 {
            return None;
        }
        let kept = &fraction[..length.min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
        rest = &fraction[length..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let hours: i64 = zone[1..3].parse().ok()?;
            let minutes: i64 = zone[4..6].parse().ok()?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    u64::try_from(seconds.checked_mul(1_000_000_000)?.checked_add(nanos)?).ok()
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

    #[test]
    #[cfg(feature = "tracing")]
    fn iso8601_times_with_a_zone_are_read() {
        assert_eq!(
            unix_nanos_of_iso8601("2026-12-02T14:44:04.123456Z"),
            Some(1_796_222_644_123_456_000)
        );
        assert_eq!(
            unix_nanos_of_iso8601("2026-12-02T15:44:04.123456+01:00"),
            Some(1_796_222_644_123_456_000)
        );
        assert_eq!(
            unix_nanos_of_iso8601("1970-01-01T00:00:01Z"),
            Some(1_000_000_000)
        );
        assert_eq!(
            unix_nanos_of_iso8601("2026-12-02T14:44:04"),
            None,
            "no zone"
        );
        assert_eq!(unix_nanos_of_iso8601("yesterday"), None);
        assert_eq!(unix_nanos_of_iso8601("2026-13-02T14:44:04Z"), None);
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(&iso8601(0), b"1970-01-01T00:00:00.000000Z");
        assert_eq!(
            &iso8601(1_764_081_844_123_456_789),
            b"2025-11-25T14:44:04.123456Z"
        );
        assert_eq!(
            &iso8601(951_782_400_000_000_000),
            b"2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(&iso8601(u64::MAX), b"2554-07-21T23:34:33.709551Z");
    }
}
