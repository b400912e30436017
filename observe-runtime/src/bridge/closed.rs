//! The observations of `tracing` spans that closed recently, by span id: a span's id outlives
//! it (a producer hands it on, `Span::follows_from` names it later), its registry entry does
//! not. A fixed table of slots, one small lock each; a newer span that lands in the same slot
//! replaces an older one. Imports only the ids.

use crate::ids::{ObservationId, TraceId, GOLDEN};

/// Slots in the table: the spans closed last are found, up to about this many.
const SLOTS: usize = 512;

/// What a slot holds: the span's `tracing` id and its trace and observation.
type Entry = (u64, TraceId, ObservationId);

/// The table of recently closed spans of one bridge layer.
pub(crate) struct ClosedSpans {
    slots: Box<[spin::Mutex<Option<Entry>>]>,
}

impl Default for ClosedSpans {
    fn default() -> Self {
        ClosedSpans {
            slots: (0..SLOTS).map(|_| spin::Mutex::new(None)).collect(),
        }
    }
}

impl std::fmt::Debug for ClosedSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosedSpans").finish_non_exhaustive()
    }
}

impl ClosedSpans {
    fn slot(&self, id: u64) -> &spin::Mutex<Option<Entry>> {
        // Fibonacci hashing: the registry's ids differ mostly in their low and middle bits.
        let hash = id.wrapping_mul(GOLDEN) >> 32;
        &self.slots[hash as usize % SLOTS]
    }

    /// Remembers the observation of the span `id`, which is closing.
    pub(crate) fn remember(&self, id: u64, trace: TraceId, observation: ObservationId) {
        *self.slot(id).lock() = Some((id, trace, observation));
    }

    /// The trace and observation of the closed span `id`, if it is still remembered.
    pub(crate) fn find(&self, id: u64) -> Option<(TraceId, ObservationId)> {
        match *self.slot(id).lock() {
            Some((key, trace, observation)) if key == id => Some((trace, observation)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_found_by_its_id_until_its_slot_is_taken() {
        let closed = ClosedSpans::default();
        let trace = TraceId::from_bytes([7; 16]).unwrap();
        let observation = ObservationId::from_bytes([9; 8]).unwrap();
        closed.remember(42, trace, observation);
        assert_eq!(closed.find(42), Some((trace, observation)));
        assert_eq!(closed.find(43), None);
        // Another id in the same slot replaces it.
        let rival = (43..)
            .find(|id| std::ptr::eq(closed.slot(*id), closed.slot(42)))
            .unwrap();
        closed.remember(rival, trace, ObservationId::from_bytes([1; 8]).unwrap());
        assert_eq!(closed.find(42), None);
    }
}
