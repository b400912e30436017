//! Trace and observation ids: random generation, strict parsing, and the deterministic ids of the
//! official SDKs. Knows nothing about spans or export.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU64;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A trace id: 16 bytes, shown as 32 lowercase hex characters, never all zero.
///
/// ```
/// use observe_runtime::TraceId;
/// let id: TraceId = "2d711642b726b04401627ca9fbac32f5".parse().unwrap();
/// assert_eq!(id, TraceId::from_seed("x"));
/// assert!("2D711642B726B04401627CA9FBAC32F5".parse::<TraceId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An observation (span) id: 8 bytes, shown as 16 lowercase hex characters, never all zero.
/// Held as a non-zero number (its bytes big-endian), so that an `Option` of it takes no more room.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservationId(NonZeroU64);

/// Both ids are sent and read as their lowercase hex text (`"4bf92f35…"`), strictly: a text that
/// `FromStr` refuses is a deserialize error naming it.
macro_rules! hex_serde {
    ($id:ty) => {
        impl serde::Serialize for $id {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $id {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_serde!(TraceId);
hex_serde!(ObservationId);

/// Why a text is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdParseError {
    kind: &'static str,
    expected_len: usize,
    value: String,
}

impl fmt::Display for IdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid {}: expected {} lowercase hex characters, not all zero \
             (use TraceId::from_external for ids from other systems, such as UUIDs)",
            self.value, self.kind, self.expected_len
        )
    }
}

impl std::error::Error for IdParseError {}

/// An id of `N` bytes written as lowercase hex, made by `from_bytes` (which refuses all zeros).
fn parse_hex<const N: usize, T>(
    text: &str,
    kind: &'static str,
    from_bytes: impl FnOnce([u8; N]) -> Option<T>,
) -> Result<T, IdParseError> {
    let error = || IdParseError {
        kind,
        expected_len: N * 2,
        value: text.chars().take(80).collect(),
    };
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return Err(error());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(error());
        };
        out[i] = high << 4 | low;
    }
    from_bytes(out).ok_or_else(error)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 15) as usize];
    }
    // Only ASCII hex digits were written.
    f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).unwrap_or_default())
}

impl TraceId {
    /// The id from its 16 bytes; `None` when all are zero.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// The 16 bytes of the id.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The first 16 bytes of SHA-256 of the seed: the same id as the official SDKs'
    /// `create_trace_id(seed)`, so every process and language derives the same trace from one key.
    ///
    /// ```
    /// assert_eq!(
    ///     observe_runtime::TraceId::from_seed("x").to_string(),
    ///     "2d711642b726b04401627ca9fbac32f5"
    /// );
    /// ```
    pub fn from_seed(seed: &str) -> Self {
        let digest = Sha256::digest(seed.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        if bytes == [0; 16] {
            bytes[15] = 1;
        }
        Self(bytes)
    }

    /// An id from another system, never failing: a valid id is kept as it is; anything else (a UUID
    /// with dashes, upper case, a request id) goes through [`TraceId::from_seed`], so the same
    /// external id always gives the same trace.
    ///
    /// ```
    /// use observe_runtime::TraceId;
    /// let id = TraceId::from_external("6F9619FF-8B86-D011-B42D-00C04FC964FF");
    /// assert_eq!(id, TraceId::from_external("6F9619FF-8B86-D011-B42D-00C04FC964FF"));
    /// assert_eq!(TraceId::from_external("2d711642b726b04401627ca9fbac32f5").to_string(),
    ///            "2d711642b726b04401627ca9fbac32f5");
    /// ```
    pub fn from_external(id: &str) -> Self {
        id.parse().unwrap_or_else(|_| Self::from_seed(id))
    }

    pub(crate) fn random() -> Self {
        let high = random_u64();
        let low = random_u64();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        Self(bytes)
    }

    /// The low 64 bits (bytes 8..16, big-endian) that OpenTelemetry's trace-id-ratio sampler reads.
    pub(crate) fn sampling_value(self) -> u64 {
        let mut low = [0u8; 8];
        low.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(low)
    }
}

impl ObservationId {
    /// The id from its 8 bytes; `None` when all are zero.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        NonZeroU64::new(u64::from_be_bytes(bytes)).map(Self)
    }

    /// The 8 bytes of the id.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.get().to_be_bytes()
    }

    /// An id that stands for none (what fills a place a record left).
    pub(crate) const PLACEHOLDER: Self = Self(NonZeroU64::MIN);

    pub(crate) fn random() -> Self {
        Self(NonZeroU64::new(random_u64()).unwrap_or(NonZeroU64::MIN))
    }
}

/// 2^64 divided by the golden ratio, odd: the increment of `random_u64`'s generator, and the
/// factor that spreads a count or an id over all 64 bits (multiplied by it, numbers that differ
/// in a few bits differ in many).
pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Observation ids drawn on one thread, without a call or a thread-local of their own (the
/// thread's stack holds it): a counter through a bijection, so never the same twice on the
/// thread, offset by a random key per thread, so as unlikely as random ids to meet another
/// thread's.
pub(crate) struct IdSequence {
    key: u64,
    count: u64,
}

impl IdSequence {
    /// Not seeded yet: [`Self::seed`] before the first [`Self::next`].
    pub(crate) const UNSEEDED: Self = Self { key: 0, count: 0 };

    pub(crate) fn seed(&mut self) {
        *self = Self {
            key: random_u64(),
            count: random_u64(),
        };
    }

    /// The next id.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> ObservationId {
        self.count = self.count.wrapping_add(1);
        // An odd factor: a bijection of the count.
        let id = self.key ^ self.count.wrapping_mul(GOLDEN);
        ObservationId(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }
}

/// Hashes observation ids for the exporter's maps, in two instructions where std's SipHash
/// takes about twenty: the id, offset by a key drawn per map, multiplied to 128 bits and the
/// halves folded. Ids are random or a count through a bijection, so this spreads them; the key
/// keeps anyone who could choose ids from choosing ones that collide.
#[derive(Clone, Copy)]
pub(crate) struct IdHash {
    key: u64,
}

impl Default for IdHash {
    fn default() -> Self {
        Self { key: random_u64() }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.key)
    }
}

/// See [`IdHash`].
pub(crate) struct IdHasher(u64);

impl IdHasher {
    #[inline]
    fn mix(&mut self, value: u64) {
        let product = u128::from(self.0 ^ value) * u128::from(GOLDEN);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }
}

/// A map keyed by observation id, hashed with [`IdHash`].
pub(crate) type IdMap<V> = std::collections::HashMap<ObservationId, V, IdHash>;
/// A set of observation ids, hashed with [`IdHash`].
pub(crate) type IdSet = std::collections::HashSet<ObservationId, IdHash>;

impl FromStr for TraceId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex(s, "trace id", Self::from_bytes)
    }
}

impl FromStr for ObservationId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex(s, "observation id", Self::from_bytes)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for ObservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.to_bytes())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Debug for ObservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObservationId({self})")
    }
}

thread_local! {
    // SplitMix64 state, seeded per thread from the OS-seeded keys of std's RandomState.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A non-zero random number; no lock, no system call after the first use on a thread.
pub(crate) fn random_u64() -> u64 {
    let next = |state: u64| {
        let state = state.wrapping_add(GOLDEN);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (state, z ^ (z >> 31))
    };
    let value = RNG
        .try_with(|cell| {
            let (state, value) = next(cell.get());
            cell.set(state);
            value
        })
        .unwrap_or_else(|_| next(seed()).1);
    if value == 0 {
        1
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_never_repeats_an_id_on_its_thread() {
        let mut ids = IdSequence::UNSEEDED;
        ids.seed();
        // Started just below the count's wrap, to cross it.
        ids.count = u64::MAX - 5_000;
        let drawn: std::collections::HashSet<_> = (0..10_000).map(|_| ids.next()).collect();
        assert_eq!(drawn.len(), 10_000);
    }

    #[test]
    fn an_id_map_finds_what_it_holds_and_nothing_else() {
        let mut ids = IdSequence::UNSEEDED;
        ids.seed();
        let held: Vec<ObservationId> = (0..10_000).map(|_| ids.next()).collect();
        let mut map = IdMap::default();
        for (n, id) in held.iter().enumerate() {
            map.insert(*id, n);
        }
        assert_eq!(map.len(), 10_000);
        assert!(held
            .iter()
            .enumerate()
            .all(|(n, id)| map.get(id) == Some(&n)));
        assert!((0..1_000).all(|_| !map.contains_key(&ids.next())));
    }

    #[test]
    fn seed_matches_the_official_sdks() {
        assert_eq!(
            TraceId::from_seed("x").to_string(),
            "2d711642b726b04401627ca9fbac32f5"
        );
    }

    #[test]
    fn parsing_is_strict() {
        assert!("0".repeat(32).parse::<TraceId>().is_err());
        assert!("0".repeat(16).parse::<ObservationId>().is_err());
        assert!("abc".parse::<TraceId>().is_err());
        let err = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
            .parse::<TraceId>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"6F9619FF-8B86-D011-B42D-00C04FC964FF\" is not a valid trace id: expected 32 \
             lowercase hex characters, not all zero (use TraceId::from_external for ids from \
             other systems, such as UUIDs)"
        );
        let id: ObservationId = "00f067aa0ba902b7".parse().unwrap();
        assert_eq!(id.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn random_ids_differ_and_are_never_zero() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert_ne!(a, b);
        assert_ne!(ObservationId::random().to_bytes(), [0; 8]);
    }

    #[test]
    fn external_ids_are_stable() {
        let uuid = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        assert_eq!(TraceId::from_external(uuid), TraceId::from_seed(uuid));
    }
}
