//! The finished-span record in its two forms: [`SpanData`], what the hot path fills in (ticks, a
//! version number for the trace attributes, rarely used fields boxed apart), and
//! [`FinishedSpan`], what exporters receive (Unix times, the trace attributes resolved).
//! Plain data: no thread-locals, no export.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Cost, Level, ObservationType, PromptLink, TraceAttributes, TraceState, Usage};
use crate::clock::Ticks;
use crate::ids::{ObservationId, TraceId};
use crate::media::{MediaAttachment, MediaField};
use crate::text::Text;

/// A finished observation, as exporters receive it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: ObservationId,
    /// The observation it ran under; `None` for the root of a trace.
    pub parent_span_id: Option<ObservationId>,
    /// `true` when its parent is not an observation of this process (the root here).
    pub is_local_root: bool,
    /// Its name.
    pub name: Cow<'static, str>,
    /// Its type.
    pub kind: ObservationType,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The input as JSON text.
    pub input: Option<String>,
    /// The output as JSON text.
    pub output: Option<String>,
    /// The level.
    pub level: Level,
    /// The status message (an error text, `cancelled`, ...).
    pub status_message: Option<String>,
    /// The model of a generation.
    pub model: Option<String>,
    /// The model parameters as JSON text.
    pub model_parameters: Option<String>,
    /// Token counts.
    pub usage: Option<Usage>,
    /// Costs in USD.
    pub cost: Option<Cost>,
    /// When the first token arrived, in nanoseconds since the Unix epoch.
    pub completion_start_unix_nanos: Option<u64>,
    /// The prompt a generation was made from.
    pub prompt: Option<PromptLink>,
    /// Observation metadata: key and JSON text of the value.
    pub metadata: Vec<(String, String)>,
    /// The trace attributes when the span ended.
    pub trace: Arc<TraceAttributes>,
    /// An experiment item's run or task observation: it also carries the run's description and
    /// the item's expected output.
    pub experiment_item: bool,
    /// The media its input, output and metadata refer to (`@@@langfuseMedia:…@@@`), with their
    /// bytes, uploaded by the exporter.
    pub media: Vec<MediaAttachment>,
}

/// What most observations never set, kept out of line so the record stays small.
#[derive(Debug, Default)]
pub(crate) struct Details {
    /// The status message (an error text, `cancelled`, ...).
    pub(crate) status_message: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) model_parameters: Option<String>,
    pub(crate) usage: Option<Usage>,
    pub(crate) cost: Option<Cost>,
    pub(crate) completion_start_unix_nanos: Option<u64>,
    pub(crate) prompt: Option<PromptLink>,
    pub(crate) metadata: Vec<(String, String)>,
    /// An experiment item's run or task observation.
    pub(crate) experiment_item: bool,
    /// Media found in its input, output or metadata, to upload.
    pub(crate) media: Vec<MediaAttachment>,
    /// When the first item of a streamed result came (set by the stream wrapper; an explicit
    /// `completion_start_unix_nanos` wins).
    pub(crate) first_item: Option<Ticks>,
    /// Values to record once the observation has ended, off its thread.
    pub(crate) fill: Option<Fill>,
}

/// Values a record sets on itself once the observation has ended (see
/// [`ObservationFields`](super::ObservationFields)), given the field limit. The mutex makes the
/// record `Sync` (a `tracing` span's extensions must be) without asking it of the fill; it is
/// only ever taken apart, never locked.
pub(crate) struct Fill(std::sync::Mutex<FillFn>);

type FillFn = Box<dyn FnOnce(&mut SpanData, usize) + Send>;

impl Fill {
    pub(crate) fn new(fill: impl FnOnce(&mut SpanData, usize) + Send + 'static) -> Fill {
        Fill(std::sync::Mutex::new(Box::new(fill)))
    }

    fn run(self, data: &mut SpanData, limit: usize) {
        let fill = self
            .0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        fill(data, limit);
    }
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fill")
    }
}

/// The yes-or-no facts of an observation: a bit each in bits 16–31 of its [`Head`].
struct Flags;

impl Flags {
    /// Its parent is in another process or thread (or it has none): the root of what this
    /// thread records of the trace.
    const LOCAL_ROOT: u64 = 1 << Head::FLAGS;
    /// The input was set by the user (captured arguments then stay out).
    const EXPLICIT_INPUT: u64 = 1 << (Head::FLAGS + 1);
    /// The output was set by the user (the captured return value then stays out).
    const EXPLICIT_OUTPUT: u64 = 1 << (Head::FLAGS + 2);
    /// A child of this observation was admitted to the queue: it must be admitted too, or the
    /// child would arrive without its parent.
    const CHILD_ADMITTED: u64 = 1 << (Head::FLAGS + 3);
    /// A context handle was taken on it, so children may end on other threads: always admitted.
    const SHARED: u64 = 1 << (Head::FLAGS + 4);
    /// Written into its thread's chunk when it opened, and not ended yet (see
    /// [`SpanData::open_in_chunk`]).
    const OPEN: u64 = 1 << (Head::FLAGS + 5);
    /// What is left in a chunk where a record was taken out before it was handed over: skipped.
    const GONE: u64 = 1 << (Head::FLAGS + 6);
}

/// The record's small fields in one `u64`: the kind (bits 0–7, its place in
/// [`ObservationType::ALL`]), the level (8–15), the [`Flags`] (16–31) and the version of the
/// trace attributes (32–63). One integer, so that the record is copied as whole words: as
/// separate fields the compiler copied them piece by piece, at offsets that made the loads wait
/// on the stores just before them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Head(u64);

const LEVELS: [Level; 4] = [Level::Debug, Level::Default, Level::Warning, Level::Error];

impl Head {
    const LEVEL: u32 = 8;
    const FLAGS: u32 = 16;
    const VERSION: u32 = 32;

    fn new(kind: ObservationType, is_local_root: bool) -> Head {
        let root = if is_local_root { Flags::LOCAL_ROOT } else { 0 };
        Head(kind as u64 | (Level::Default as u64) << Head::LEVEL | root)
    }

    fn kind(self) -> ObservationType {
        let index = (self.0 & 0xff) as usize;
        ObservationType::ALL.get(index).copied().unwrap_or_default()
    }

    fn set_kind(&mut self, kind: ObservationType) {
        self.0 = self.0 & !0xff | kind as u64;
    }

    fn level(self) -> Level {
        let index = (self.0 >> Head::LEVEL & 0xff) as usize;
        LEVELS.get(index).copied().unwrap_or_default()
    }

    fn set_level(&mut self, level: Level) {
        self.0 = self.0 & !(0xff << Head::LEVEL) | (level as u64) << Head::LEVEL;
    }

    fn version(self) -> u32 {
        (self.0 >> Head::VERSION) as u32
    }

    /// Stores the whole word: written as its upper half alone (what the compiler would make of
    /// it), the record's copy into the buffer, which reads the word whole right after, would
    /// wait for that store to reach the cache instead of taking it from the store buffer.
    fn set_version(&mut self, version: u32) {
        let word = self.0 & 0xffff_ffff | u64::from(version) << Head::VERSION;
        self.0 = std::hint::black_box(word);
    }

    /// Whether any of the bits of `flags` is set.
    fn has(self, flags: u64) -> bool {
        self.0 & flags != 0
    }

    fn set(&mut self, flag: u64) {
        self.0 |= flag;
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("kind", &self.kind())
            .field("level", &self.level())
            .field(
                "flags",
                &format_args!("{:#x}", self.0 >> Head::FLAGS & 0xffff),
            )
            .field("attributes_version", &self.version())
            .finish()
    }
}

/// An observation being recorded, then finished: what the hot path writes.
#[derive(Debug)]
pub(crate) struct SpanData {
    pub(crate) span_id: ObservationId,
    pub(crate) parent_span_id: Option<ObservationId>,
    /// The kind, the level, the flags and the version of the trace attributes when it ended
    /// (see [`TraceState`]).
    head: Head,
    pub(crate) name: Cow<'static, str>,
    pub(crate) start: Ticks,
    pub(crate) end: Ticks,
    pub(crate) input: Option<Text>,
    pub(crate) output: Option<Text>,
    pub(crate) details: Option<Box<Details>>,
}

impl SpanData {
    /// A new observation starting now.
    #[inline(always)]
    pub(crate) fn start(
        span_id: ObservationId,
        parent_span_id: Option<ObservationId>,
        is_local_root: bool,
        name: Cow<'static, str>,
        kind: ObservationType,
    ) -> Self {
        let start = Ticks::now();
        Self {
            span_id,
            parent_span_id,
            head: Head::new(kind, is_local_root),
            name,
            start,
            end: start,
            input: None,
            output: None,
            details: None,
        }
    }

    /// The observation's type.
    #[inline]
    pub(crate) fn kind(&self) -> ObservationType {
        self.head.kind()
    }

    /// Sets its type (the bridge learns it from a span's fields after it opened).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn set_kind(&mut self, kind: ObservationType) {
        self.head.set_kind(kind);
    }

    /// Its level.
    #[inline]
    pub(crate) fn level(&self) -> Level {
        self.head.level()
    }

    /// Sets its level.
    #[inline]
    pub(crate) fn set_level(&mut self, level: Level) {
        self.head.set_level(level);
    }

    /// The version of the trace attributes it was ended with.
    #[inline]
    pub(crate) fn attributes_version(&self) -> u32 {
        self.head.version()
    }

    /// Notes the version of the trace attributes as it ends.
    #[inline]
    pub(crate) fn set_attributes_version(&mut self, version: u32) {
        self.head.set_version(version);
    }

    /// Notes its end: when, and the version of the trace attributes then (and that it is no
    /// longer open in its chunk).
    #[inline(always)]
    pub(crate) fn set_end(&mut self, end: EndStamp) {
        self.end = end.at;
        self.head.0 &= !Flags::OPEN;
        self.set_attributes_version(end.version);
    }

    /// Notes that it was written into its thread's chunk as it opened: it is ended there.
    #[inline(always)]
    pub(crate) fn open_in_chunk(mut self) -> Self {
        self.head.set(Flags::OPEN);
        self
    }

    /// Open in its chunk (not ended yet).
    #[inline(always)]
    pub(crate) fn is_open(&self) -> bool {
        self.head.has(Flags::OPEN)
    }

    /// Taken out of its chunk while open, to end elsewhere.
    pub(crate) fn leave_chunk(&mut self) {
        self.head.0 &= !Flags::OPEN;
    }

    /// What stands in a chunk where a record was taken out: skipped when the chunk is handed
    /// over.
    pub(crate) fn gone() -> Self {
        let mut head = Head::new(ObservationType::Span, false);
        head.set(Flags::GONE);
        let now = Ticks::now();
        Self {
            span_id: ObservationId::PLACEHOLDER,
            parent_span_id: None,
            head,
            name: Cow::Borrowed(""),
            start: now,
            end: now,
            input: None,
            output: None,
            details: None,
        }
    }

    /// Whether this is what stands where a record was taken out.
    #[inline]
    pub(crate) fn is_gone(&self) -> bool {
        self.head.has(Flags::GONE)
    }

    /// Sets the input given explicitly (captured arguments then stay out).
    pub(crate) fn set_input(&mut self, json: String) {
        self.input = Some(json.into());
        self.head.set(Flags::EXPLICIT_INPUT);
    }

    /// Sets the output given explicitly (the captured return value then stays out).
    pub(crate) fn set_output(&mut self, json: String) {
        self.output = Some(json.into());
        self.head.set(Flags::EXPLICIT_OUTPUT);
    }

    /// Stores a captured output (the return value, a stream's items, an error's message), unless
    /// the user set one, which stays; whether it was stored.
    pub(crate) fn set_captured_output(&mut self, text: Text) -> bool {
        if self.explicit_output() {
            return false;
        }
        self.output = Some(text);
        true
    }

    /// The root of what this thread records of its trace (its parent, if any, is elsewhere).
    pub(crate) fn is_local_root(&self) -> bool {
        self.head.has(Flags::LOCAL_ROOT)
    }

    /// The input was set by the user (captured arguments then stay out).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn explicit_input(&self) -> bool {
        self.head.has(Flags::EXPLICIT_INPUT)
    }

    /// The output was set by the user (the captured return value then stays out).
    pub(crate) fn explicit_output(&self) -> bool {
        self.head.has(Flags::EXPLICIT_OUTPUT)
    }

    /// Its parent, when that one is of this process (not the remote parent of a local root).
    pub(crate) fn parent_here(&self) -> Option<ObservationId> {
        self.parent_span_id.filter(|_| !self.is_local_root())
    }

    /// Notes that a child was admitted to the queue: this must then be admitted too.
    pub(crate) fn mark_child_admitted(&mut self) {
        self.head.set(Flags::CHILD_ADMITTED);
    }

    /// Notes that a context handle was taken on it: it is then always admitted.
    pub(crate) fn mark_shared(&mut self) {
        self.head.set(Flags::SHARED);
    }

    /// Sets a metadata key, replacing its value if it was set.
    pub(crate) fn set_metadata(&mut self, key: String, json: String) {
        let metadata = &mut self.details().metadata;
        metadata.retain(|(k, _)| *k != key);
        metadata.push((key, json));
    }

    /// Keeps the media found in a value written to `field`: a value set again replaces the media
    /// of the input or output before it; metadata adds.
    #[inline]
    pub(crate) fn add_media(&mut self, field: MediaField, media: Vec<MediaAttachment>) {
        if !media.is_empty() {
            self.attach_media(field, media);
        }
    }

    #[inline(never)]
    fn attach_media(&mut self, field: MediaField, media: Vec<MediaAttachment>) {
        let details = self.details();
        if field != MediaField::Metadata {
            details.media.retain(|m| m.field != field);
        }
        details.media.extend(media);
    }

    /// The status message, if one was set.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn status_message(&self) -> Option<&str> {
        self.details.as_ref()?.status_message.as_deref()
    }

    /// The status message, to set or change (the rarely used fields are allocated for it).
    pub(crate) fn status_message_mut(&mut self) -> &mut Option<String> {
        &mut self.details().status_message
    }

    /// The rarely used fields, allocated on first use.
    pub(crate) fn details(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    /// Whether it must be admitted whatever the queue holds: a parent of what was admitted, or
    /// of what may have been (a context handle was taken on it).
    pub(crate) fn must_pass(&self) -> bool {
        self.head.has(Flags::CHILD_ADMITTED | Flags::SHARED)
    }
}

/// When an observation ended, and the version of its trace's attributes then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndStamp {
    pub(crate) at: Ticks,
    pub(crate) version: u32,
}

/// A finished observation with the trace it belongs to: what travels from the thread that ended
/// it to the exporter, in chunks. A thread ends many observations of one trace in a row, so a
/// record whose trace is the one of the record before it in its chunk leaves `trace` empty: one
/// reference per run of a trace, not one per record. The first record of a chunk always has it.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) trace: Option<Arc<TraceState>>,
    pub(crate) data: SpanData,
}

impl Record {
    /// The record with its trace set, from `run` (the trace of the records before it in its
    /// chunk) when it has none: to start a chunk of its own.
    pub(crate) fn standalone(mut self, run: &Option<Arc<TraceState>>) -> Record {
        if self.trace.is_none() {
            self.trace = run.clone();
        }
        self
    }

    /// The exporters' form: Unix times from `unix_nanos`, the trace attributes resolved. `run`
    /// is the trace of the records before it in its chunk (updated when this one has its own);
    /// `None` only if the chunk started without a trace, which never happens.
    pub(crate) fn finish(
        self,
        run: &mut Option<Arc<TraceState>>,
        unix_nanos: impl Fn(Ticks) -> u64,
    ) -> Option<FinishedSpan> {
        let Record { trace, mut data } = self;
        if trace.is_some() {
            *run = trace;
        }
        let trace = run.as_deref()?;
        if let Some(fill) = data.details.as_mut().and_then(|d| d.fill.take()) {
            fill.run(&mut data, trace.options.field_limit);
        }
        let (kind, level) = (data.kind(), data.level());
        let attributes = trace.attributes_at(data.attributes_version());
        let is_local_root = data.is_local_root();
        let details = data.details.map(|d| *d).unwrap_or_default();
        let start_unix_nanos = unix_nanos(data.start);
        let end_unix_nanos = if kind == ObservationType::Event {
            start_unix_nanos
        } else {
            unix_nanos(data.end).max(start_unix_nanos)
        };
        Some(FinishedSpan {
            trace_id: trace.trace_id,
            span_id: data.span_id,
            parent_span_id: data.parent_span_id,
            is_local_root,
            name: data.name,
            kind,
            start_unix_nanos,
            end_unix_nanos,
            input: data.input.map(Text::into_string),
            output: data.output.map(Text::into_string),
            level,
            status_message: details.status_message,
            model: details.model,
            model_parameters: details.model_parameters,
            usage: details.usage,
            cost: details.cost,
            completion_start_unix_nanos: details
                .completion_start_unix_nanos
                .or_else(|| details.first_item.map(&unix_nanos)),
            prompt: details.prompt.or_else(|| {
                (kind == ObservationType::Generation)
                    .then(|| attributes.prompt.clone())
                    .flatten()
            }),
            metadata: details.metadata,
            trace: attributes,
            experiment_item: details.experiment_item,
            media: details.media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(is_local_root: bool, kind: ObservationType) -> SpanData {
        SpanData::start(
            ObservationId::random(),
            None,
            is_local_root,
            Cow::Borrowed("f"),
            kind,
        )
    }

    #[test]
    fn a_record_is_whole_words_and_no_larger_than_it_was_measured() {
        // Every byte of a record is written on the recording thread and read on the exporter's
        // (BENCHMARKS.md: about 0.3 ns a byte); the small fields fill one word together.
        assert_eq!(std::mem::size_of::<SpanData>(), 120);
        assert_eq!(std::mem::size_of::<Option<SpanData>>(), 120);
        assert_eq!(std::mem::size_of::<Record>(), 128);
        let mut data = started(true, ObservationType::Span);
        assert!(data.is_local_root() && !data.must_pass());
        assert!(!data.explicit_input() && !data.explicit_output());
        data.set_input("1".into());
        data.mark_shared();
        assert!(data.explicit_input() && !data.explicit_output() && data.must_pass());
        assert!(data.is_local_root());
    }

    #[test]
    fn the_small_fields_share_a_word_without_disturbing_each_other() {
        let mut data = started(false, ObservationType::Guardrail);
        assert_eq!(
            (data.kind(), data.level()),
            (ObservationType::Guardrail, Level::Default)
        );
        data.set_attributes_version(u32::MAX);
        data.mark_child_admitted();
        for kind in ObservationType::ALL {
            for level in LEVELS {
                data.set_kind(kind);
                data.set_level(level);
                assert_eq!((data.kind(), data.level()), (kind, level));
                assert_eq!(data.attributes_version(), u32::MAX);
                assert!(data.must_pass() && !data.is_local_root() && !data.explicit_output());
            }
        }
        data.set_attributes_version(7);
        assert_eq!(data.attributes_version(), 7);
        assert_eq!(
            (data.kind(), data.level()),
            (ObservationType::Guardrail, Level::Error)
        );
    }
}
