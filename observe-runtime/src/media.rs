//! Media inside captured values: images, audio and documents found while a value is serialized
//! (a `data:<mime>;base64,…` string, Anthropic's and Gemini's base64 blocks, OpenAI's input
//! audio) or given as a [`Media`], decoded once and replaced by Langfuse's media reference
//! (`@@@langfuseMedia:type=…|id=…|source=…@@@`); the bytes travel beside the span as
//! [`MediaAttachment`]s for the exporter to upload. Plain text and bytes: knows nothing of
//! spans, threads or HTTP.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The content types Langfuse stores (`MediaContentType` of its public API, in its order): it
/// answers any other with HTTP 400, and the media would be lost.
pub(crate) const CONTENT_TYPES: [&str; 52] = [
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/webp",
    "image/gif",
    "image/svg+xml",
    "image/tiff",
    "image/bmp",
    "image/avif",
    "image/heic",
    "audio/mpeg",
    "audio/mp3",
    "audio/wav",
    "audio/ogg",
    "audio/oga",
    "audio/aac",
    "audio/mp4",
    "audio/flac",
    "audio/opus",
    "audio/webm",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/mpeg",
    "video/quicktime",
    "video/x-msvideo",
    "video/x-matroska",
    "text/plain",
    "text/html",
    "text/css",
    "text/csv",
    "text/markdown",
    "text/x-python",
    "application/javascript",
    "text/x-typescript",
    "application/x-yaml",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
    "application/json",
    "application/xml",
    "application/octet-stream",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/rtf",
    "application/x-ndjson",
    "application/vnd.apache.parquet",
    "application/gzip",
    "application/x-tar",
    "application/x-7z-compressed",
];

/// Other names of types Langfuse stores, and the name it knows them by.
const ALIASES: [(&str, &str); 3] = [
    ("audio/x-wav", "audio/wav"),
    ("audio/wave", "audio/wav"),
    ("audio/vnd.wave", "audio/wav"),
];

/// Bytes of media decoded and not yet uploaded, at most: past it new media is left out (its
/// place says so) and counted.
pub(crate) const PENDING_BUDGET: u64 = 512 * 1024 * 1024;

/// Whether media is detected and replaced (set at `init`: on with Langfuse, the console and the
/// memory exporter unless `LANGFUSE_MEDIA_UPLOAD_ENABLED=false`; off for a generic collector).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Bytes held by attachments not yet uploaded (or dropped).
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Media left out because the budget was full, for `stats()`.
static OVER_BUDGET: AtomicU64 = AtomicU64::new(0);

pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Media left out for the memory budget since the start.
pub(crate) fn over_budget() -> u64 {
    OVER_BUDGET.load(Ordering::Relaxed)
}

/// Where in an observation the media was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaField {
    /// The input.
    Input,
    /// The output.
    Output,
    /// A metadata value.
    Metadata,
}

impl MediaField {
    /// `input`, `output` or `metadata`, as Langfuse's media API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Metadata => "metadata",
        }
    }

    /// The field [`Self::as_str`] names.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "input" => Some(Self::Input),
            "output" => Some(Self::Output),
            "metadata" => Some(Self::Metadata),
            _ => None,
        }
    }
}

/// The bytes of one media item found in a captured value, to be uploaded beside its span.
#[derive(Clone)]
#[non_exhaustive]
pub struct MediaAttachment {
    /// Where it was found.
    pub field: MediaField,
    /// Its MIME type.
    pub content_type: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// SHA-256 of the bytes, standard base64.
    pub sha256: String,
    /// Langfuse's media id (from the hash).
    pub media_id: String,
    /// The reference that took its place in the value.
    pub reference: String,
    /// Its share of the pending-media budget, given back when the last clone is gone.
    _budget: Arc<Budget>,
}

/// Bytes counted in the pending-media budget while an attachment (or a clone) holds them.
struct Budget(u64);

impl Drop for Budget {
    fn drop(&mut self) {
        PENDING.fetch_sub(self.0, Ordering::Relaxed);
    }
}

impl MediaAttachment {
    /// An attachment read back from the disk spool: outside the pending-media budget (the
    /// spool's cap bounds it), its media id derived from the hash again.
    pub(crate) fn restored(
        field: MediaField,
        content_type: String,
        bytes: Arc<[u8]>,
        sha256: String,
        reference: String,
    ) -> Self {
        MediaAttachment {
            field,
            media_id: media_id_of(&sha256),
            content_type,
            bytes,
            sha256,
            reference,
            _budget: Arc::new(Budget(0)),
        }
    }
}

impl std::fmt::Debug for MediaAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaAttachment")
            .field("field", &self.field)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .field("media_id", &self.media_id)
            .finish()
    }
}

impl PartialEq for MediaAttachment {
    fn eq(&self, other: &Self) -> bool {
        self.media_id == other.media_id && self.field == other.field
    }
}

/// `<image/png 312 KB>`: how a reference is shown where the bytes cannot be.
pub(crate) fn describe(content_type: &str, bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!(
            "<{content_type} {:.1} MB>",
            bytes as f64 / (1024.0 * 1024.0)
        )
    } else {
        format!("<{content_type} {} KB>", bytes.div_ceil(1024))
    }
}

/// Media found while a value was written: the references are in the text already.
#[derive(Default)]
pub(crate) struct Found {
    items: Vec<Item>,
    /// Objects (by their number in the value) whose `data` came before the field naming its
    /// type (as in a `serde_json::Value`, whose keys are sorted): written again knowing them.
    pub(crate) hints: Vec<(usize, &'static str)>,
}

/// One media item found: its type, bytes, hash, id, reference source and budget share.
struct Item {
    content_type: String,
    bytes: Arc<[u8]>,
    sha256: String,
    media_id: String,
    source: &'static str,
    budget: Arc<Budget>,
}

impl Found {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether it holds no memory (nothing was ever found): dropping it would free nothing.
    #[inline]
    pub(crate) fn holds_nothing(&self) -> bool {
        self.items.capacity() == 0 && self.hints.capacity() == 0
    }

    /// How many items were found.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Forgets the items found after the first `len` (a value written again).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.items.truncate(len);
    }

    /// The attachments, for `field`.
    pub(crate) fn into_attachments(self, field: MediaField) -> Vec<MediaAttachment> {
        self.items
            .into_iter()
            .map(|item| MediaAttachment {
                field,
                reference: reference(&item.content_type, &item.media_id, item.source),
                content_type: item.content_type,
                bytes: item.bytes,
                sha256: item.sha256,
                media_id: item.media_id,
                _budget: item.budget,
            })
            .collect()
    }
}

fn reference(content_type: &str, media_id: &str, source: &str) -> String {
    format!("@@@langfuseMedia:type={content_type}|id={media_id}|source={source}@@@")
}

/// SHA-256 as standard base64, and the media id Langfuse derives from it.
pub(crate) fn hash(bytes: &[u8]) -> (String, String) {
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
    let id = media_id_of(&sha);
    (sha, id)
}

/// Langfuse's media id of a standard-base64 SHA-256: `+`→`-`, `/`→`_`, 22 characters.
fn media_id_of(sha: &str) -> String {
    sha.chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .take(22)
        .collect()
}

/// Standard or URL-safe base64, padded or not, decoded into one allocation of the exact size
/// (no copy into the `Arc` afterwards).
fn decode_base64(text: &str) -> Option<Arc<[u8]>> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let unpadded = text.trim_end_matches('=');
    let len = unpadded.len() / 4 * 3
        + match unpadded.len() % 4 {
            0 => 0,
            2 => 1,
            3 => 2,
            _ => return None,
        };
    if len == 0 {
        return None;
    }
    let mut bytes: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
    let out = Arc::get_mut(&mut bytes)?;
    let written = STANDARD
        .decode_slice(text, out)
        .or_else(|_| URL_SAFE.decode_slice(text, out))
        .ok()?;
    (written == len).then_some(bytes)
}

/// A MIME type Langfuse stores, normalised (`image/JPEG; q=1` → `image/jpeg`, `audio/x-wav` →
/// `audio/wav`).
fn known_type(text: &str) -> Option<&'static str> {
    let mime = text.split(';').next()?.trim().to_ascii_lowercase();
    let found = CONTENT_TYPES
        .iter()
        .find(|t| **t == mime)
        .copied()
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(alias, _)| *alias == mime)
                .map(|a| a.1)
        });
    if found.is_none() && mime.contains('/') {
        crate::diagnostics::warn_once(
            "media type",
            format!(
                "media of type {mime:?} stays text: Langfuse stores only the types listed in its \
                 API (MediaContentType)"
            ),
        );
    }
    found
}

/// A share of the budget for `size` bytes; `None` when it is full (counted).
fn admit(size: usize) -> Option<Arc<Budget>> {
    let size = size as u64;
    let before = PENDING.fetch_add(size, Ordering::Relaxed);
    if before + size > PENDING_BUDGET {
        PENDING.fetch_sub(size, Ordering::Relaxed);
        OVER_BUDGET.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(Arc::new(Budget(size)))
}

impl Found {
    /// Keeps `bytes` as a found item and returns the text that takes its place: its reference,
    /// or, over the budget, a description saying it was left out.
    fn add(
        &mut self,
        content_type: &'static str,
        bytes: Arc<[u8]>,
        source: &'static str,
    ) -> String {
        let Some(budget) = admit(bytes.len()) else {
            return format!(
                "{} left out: over the media memory budget",
                describe(content_type, bytes.len())
            );
        };
        let (sha256, media_id) = hash(&bytes);
        let text = reference(content_type, &media_id, source);
        self.items.push(Item {
            content_type: content_type.to_string(),
            bytes,
            sha256,
            media_id,
            source,
            budget,
        });
        text
    }
}

/// `data:<mime>[;…];base64,<data>` → its type and bytes.
fn data_uri(text: &str) -> Option<(&'static str, Arc<[u8]>)> {
    let rest = text.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let mut parts = header.split(';');
    let mime = parts.next()?;
    if !parts.any(|p| p.eq_ignore_ascii_case("base64")) {
        return None;
    }
    let content_type = known_type(mime)?;
    Some((content_type, decode_base64(data)?))
}

/// The keys that name the type of a sibling base64 `data` field: Anthropic's `media_type`,
/// Gemini's `mime_type` / `mimeType`, OpenAI audio's `format` (`wav`, `mp3`).
fn type_of_key(key: &str, value: &str) -> Option<&'static str> {
    match key {
        "media_type" | "mime_type" | "mimeType" => known_type(value),
        "format" => match value {
            "wav" => Some("audio/wav"),
            "mp3" => Some("audio/mpeg"),
            "flac" => Some("audio/flac"),
            "opus" => Some("audio/opus"),
            "aac" => Some("audio/aac"),
            "pcm16" => None,
            _ => None,
        },
        _ => None,
    }
}

#[derive(Default)]
struct Object {
    /// Its number in the value, counting from 0 in writing order.
    index: usize,
    key: String,
    content_type: Option<&'static str>,
    /// Its `data` was written as text before its type was known.
    data_before_type: bool,
}

#[derive(PartialEq)]
enum Text {
    /// Outside a string.
    None,
    /// A key: copied to see which field comes.
    Key,
    /// A value: the first fragment decides.
    Undecided,
    /// A value written as it is (also copied when it may name a media type).
    Plain,
    /// A value replaced by a reference: the rest is swallowed.
    Replaced,
}

/// A compact JSON formatter that replaces media as it is written.
pub(crate) struct MediaFormatter<'a> {
    found: &'a mut Found,
    /// The hints of an earlier pass (see [`Found::hints`]).
    hints: Vec<(usize, &'static str)>,
    objects_seen: usize,
    objects: Vec<Object>,
    text: Text,
    in_key: bool,
    copy: String,
}

impl<'a> MediaFormatter<'a> {
    pub(crate) fn new(found: &'a mut Found, hints: Vec<(usize, &'static str)>) -> Self {
        MediaFormatter {
            found,
            hints,
            objects_seen: 0,
            objects: Vec::new(),
            text: Text::None,
            in_key: false,
            copy: String::new(),
        }
    }

    /// The current object's key when it may name a media type or hold media data.
    fn watched_key(&self) -> Option<&str> {
        let key = self.objects.last()?.key.as_str();
        matches!(
            key,
            "media_type" | "mime_type" | "mimeType" | "format" | "data"
        )
        .then_some(key)
    }
}

impl serde_json::ser::Formatter for MediaFormatter<'_> {
    fn begin_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.text = if self.in_key {
            Text::Key
        } else {
            Text::Undecided
        };
        self.copy.clear();
        writer.write_all(b"\"")
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        match self.text {
            Text::Key => {
                if let Some(object) = self.objects.last_mut() {
                    object.key = std::mem::take(&mut self.copy);
                }
            }
            Text::Plain | Text::Undecided => {
                let key = self.watched_key().map(str::to_string);
                if let (Some(key), Some(object)) = (key, self.objects.last_mut()) {
                    if let Some(content_type) = type_of_key(&key, &self.copy) {
                        object.content_type = Some(content_type);
                    }
                }
            }
            _ => {}
        }
        self.text = Text::None;
        writer.write_all(b"\"")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        match self.text {
            Text::Key => {
                if self.copy.len() < 64 {
                    self.copy.push_str(fragment);
                }
                writer.write_all(fragment.as_bytes())
            }
            Text::Undecided => {
                let object = self.objects.last().filter(|o| o.key == "data");
                let sibling = object.and_then(|o| {
                    o.content_type.or_else(|| {
                        self.hints
                            .iter()
                            .find(|(index, _)| *index == o.index)
                            .map(|(_, content_type)| *content_type)
                    })
                });
                let media = data_uri(fragment).or_else(|| {
                    let content_type = sibling?;
                    Some((content_type, decode_base64(fragment)?))
                });
                match media {
                    Some((content_type, bytes)) => {
                        self.text = Text::Replaced;
                        let text = self.found.add(content_type, bytes, "base64_data_uri");
                        writer.write_all(text.as_bytes())
                    }
                    None => {
                        self.text = Text::Plain;
                        if let Some(object) = self.objects.last_mut().filter(|o| o.key == "data") {
                            object.data_before_type = fragment.len() >= 16;
                        }
                        if self.watched_key().is_some() && self.copy.len() < 64 {
                            self.copy.push_str(fragment);
                        }
                        writer.write_all(fragment.as_bytes())
                    }
                }
            }
            Text::Replaced => Ok(()),
            Text::Plain | Text::None => {
                if self.watched_key().is_some() && self.copy.len() < 64 {
                    self.copy.push_str(fragment);
                }
                writer.write_all(fragment.as_bytes())
            }
        }
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        if self.text == Text::Replaced {
            return Ok(());
        }
        if self.text == Text::Undecided {
            self.text = Text::Plain;
        }
        serde_json::ser::CompactFormatter.write_char_escape(writer, escape)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.objects.push(Object {
            index: self.objects_seen,
            ..Object::default()
        });
        self.objects_seen += 1;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if let Some(object) = self.objects.pop() {
            if let (true, Some(content_type)) = (object.data_before_type, object.content_type) {
                self.found.hints.push((object.index, content_type));
            }
        }
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.in_key = true;
        if first {
            Ok(())
        } else {
            writer.write_all(b",")
        }
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.in_key = false;
        Ok(())
    }
}

/// Media given as [`Media`] values while a value is being written with media detection, and how
/// many such writes are under way on this thread (none: a `Media` is written as data).
struct Collecting {
    depth: Cell<u32>,
    given: RefCell<Found>,
}

thread_local! {
    /// Kept for the thread's life, and reached once per write: a write that finds nothing
    /// costs a few reads.
    static COLLECTING: Collecting = const {
        Collecting {
            depth: Cell::new(0),
            given: RefCell::new(Found { items: Vec::new(), hints: Vec::new() }),
        }
    };
}

/// Runs `write` with [`Media`] values collected into `found` (instead of written as data).
pub(crate) fn collecting<R>(found: &mut Found, write: impl FnOnce(&mut Found) -> R) -> R {
    /// Ends the write, also when it panics: what it gave and did not take is forgotten.
    struct Leave<'a>(&'a Collecting, usize);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            let Leave(collecting, mark) = *self;
            collecting
                .depth
                .set(collecting.depth.get().saturating_sub(1));
            if let Ok(mut given) = collecting.given.try_borrow_mut() {
                given.items.truncate(mark);
            }
        }
    }
    COLLECTING.with(|collecting| {
        let mark = collecting.given.borrow().items.len();
        collecting.depth.set(collecting.depth.get() + 1);
        let leave = Leave(collecting, mark);
        let result = write(found);
        {
            let mut given = collecting.given.borrow_mut();
            if given.items.len() > mark {
                found.items.extend(given.items.drain(mark..));
            }
        }
        drop(leave);
        result
    })
}

/// An image, audio clip or document to attach to an observation's input, output or metadata:
/// put it in any captured value or setter, and the bytes are uploaded to Langfuse, the value
/// showing a media reference in their place.
///
/// ```
/// use observe_runtime::{current_observation, Media};
/// let chart = Media::new(vec![0x89, b'P', b'N', b'G'], "image/png");
/// current_observation().output(serde_json::json!({"summary": "sales grew", "chart": chart}));
/// ```
#[derive(Clone)]
pub struct Media {
    bytes: Arc<[u8]>,
    content_type: String,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.content_type, self.bytes.len()))
    }
}

impl Media {
    /// The bytes and their MIME type (one Langfuse stores, such as `image/png`, `audio/wav`,
    /// `application/pdf`; any other is recorded as a description, with one warning).
    pub fn new(bytes: impl Into<Vec<u8>>, content_type: &str) -> Self {
        Media {
            bytes: Arc::from(bytes.into()),
            content_type: content_type.to_string(),
        }
    }

    /// The MIME type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Serialize for Media {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let shown = describe(&self.content_type, self.bytes.len());
        let Some(content_type) = known_type(&self.content_type) else {
            return serializer.serialize_str(&shown);
        };
        let taken = COLLECTING.with(|collecting| {
            (collecting.depth.get() > 0).then(|| {
                collecting
                    .given
                    .borrow_mut()
                    .add(content_type, self.bytes.clone(), "bytes")
            })
        });
        match taken {
            Some(text) => serializer.serialize_str(&text),
            // Serialized ahead of capture (inside `json!`, say): as a data URI, which capture
            // finds and replaces.
            None if enabled() => serializer.serialize_str(&format!(
                "data:{content_type};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&self.bytes)
            )),
            None => serializer.serialize_str(&shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn base64_of_either_alphabet_padded_or_not_decodes_to_the_exact_bytes() {
        let cases: [&[u8]; 5] = [b"a", b"ab", b"abc", b"abcd", &[0xfb, 0xff, 0xfe, 0x3e]];
        for bytes in cases {
            let standard = STANDARD.encode(bytes);
            let url_safe = URL_SAFE_NO_PAD.encode(bytes);
            assert_eq!(
                decode_base64(&standard).as_deref(),
                Some(bytes),
                "{standard}"
            );
            let unpadded = standard.trim_end_matches('=');
            assert_eq!(
                decode_base64(unpadded).as_deref(),
                Some(bytes),
                "{unpadded}"
            );
            assert_eq!(
                decode_base64(&url_safe).as_deref(),
                Some(bytes),
                "{url_safe}"
            );
        }
        assert_eq!(STANDARD.encode([0xfb, 0xff, 0xfe]), "+//+");
        assert_eq!(
            decode_base64("-__-").as_deref(),
            Some(&[0xfb, 0xff, 0xfe][..])
        );
        for not_base64 in ["", "=", "abcde", "ab$d", "ab=d"] {
            assert_eq!(decode_base64(not_base64), None, "{not_base64:?}");
        }
    }
}
