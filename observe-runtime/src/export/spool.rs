//! The disk spool (`LANGFUSE_SPOOL_DIR`): request bodies that could not be delivered (retries ran
//! out, or the shutdown deadline came) are written to a directory, and sent first by the next
//! exporter that uses the same directory, in this process or another.
//!
//! - **Atomic.** A batch is written to a hidden temporary file, synced, then renamed to
//!   `<unix-nanos>-<pid>-<random>.batch`: a reader never sees half a batch. Names sort oldest
//!   first.
//! - **Bounded.** The batches together stay under the size cap; the oldest are evicted (and
//!   counted) to make room.
//! - **Once.** A sender claims a batch by renaming it to `<name>.sending-<pid>` before sending it,
//!   so that two processes sharing the directory never both send it; it is deleted once the server
//!   accepted it, and renamed back when the server could not be reached. A claim left by a process
//!   that died is taken back at the next start (on Unix, where a process can be asked whether it
//!   lives).
//! - **Checked.** Each file starts with a header: magic, kind, span count, length, and the SHA-256
//!   of the body. A corrupt or truncated file is moved aside as `<name>.corrupt` with a warning.
//! - **With its media.** The media of a batch that were not uploaded (bytes, type, hash, trace,
//!   observation, field) are kept in the same file, after the request body, and uploaded before
//!   it is sent again. A batch whose media do not fit under the cap is kept without them (the
//!   media are counted as failed, with a warning).
//!
//! What remains: a process that dies after the server accepted a batch and before deleting it
//! sends that batch again at the next start (a duplicate, never a loss). Media that fail again
//! when their batch is sent from the spool are lost (counted). Scores are not spooled.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::media_upload::Upload;
use super::stats::Counters;
use super::transport::Undelivered;
use crate::diagnostics;
use crate::ids::random_u64;
use crate::media::{MediaAttachment, MediaField};

const MAGIC: &[u8; 8] = b"LFSPOOL1";
/// A gzipped OTLP/HTTP protobuf request body of spans.
const KIND_OTLP_TRACES: u8 = 1;
/// The same, followed by the media to upload before it is sent (see [`media_section`]).
const KIND_OTLP_TRACES_WITH_MEDIA: u8 = 2;
/// Magic, kind, span count (u32 LE), body length (u32 LE), SHA-256 of the body.
const HEADER_LEN: usize = 8 + 1 + 4 + 4 + 32;
const BATCH_SUFFIX: &str = ".batch";
const CLAIM_MARK: &str = ".sending-";
/// While batches wait, the spool is tried again this often (after a delivery succeeded).
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// One spooled batch, read back.
pub(crate) struct Batch {
    pub(crate) spans: u64,
    pub(crate) body: Vec<u8>,
    /// Its media not uploaded yet.
    pub(crate) media: Vec<Upload>,
}

pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    counters: Arc<Counters>,
    /// Batches may be waiting (found at the start, or written since).
    waiting: bool,
    last_try: Option<Instant>,
}

impl Spool {
    /// Opens (and creates) the directory; takes back the claims of processes that died.
    pub(crate) fn open(
        dir: PathBuf,
        max_bytes: u64,
        counters: Arc<Counters>,
    ) -> Result<Self, String> {
        fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "the spool directory {} cannot be created: {e}",
                dir.display()
            )
        })?;
        let spool = Spool {
            dir,
            max_bytes,
            counters,
            waiting: true,
            last_try: None,
        };
        spool.take_back_dead_claims();
        Ok(spool)
    }

    /// Writes a batch of `spans` spans (a gzipped OTLP body) with the media still to upload;
    /// `Err` says why it could not be kept. Media that would not fit under the cap are left out
    /// (counted as failed uploads, with a warning), the spans kept.
    pub(crate) fn keep(
        &mut self,
        body: &[u8],
        spans: usize,
        media: &[Upload],
    ) -> Result<(), String> {
        let mut pieces = Pieces::default();
        pieces.owned(Vec::new());
        if !media.is_empty() {
            pieces.owned((body.len() as u32).to_le_bytes().to_vec());
            pieces.borrowed(body);
            media_section(&mut pieces, media);
        } else {
            pieces.borrowed(body);
        }
        let with_media = (HEADER_LEN + pieces.len()) as u64;
        if !media.is_empty() && (with_media > self.max_bytes || pieces.len() > u32::MAX as usize) {
            let bytes: usize = media.iter().map(|m| m.media.bytes.len()).sum();
            Counters::add(&self.counters.media_failed, media.len() as u64);
            diagnostics::warn(
                "spool-media",
                format!(
                    "{} media item(s) ({bytes} bytes) were left out of a spooled batch: with them \
                     it would not fit in the spool cap of {} bytes",
                    media.len(),
                    self.max_bytes
                ),
            );
            return self.keep(body, spans, &[]);
        }
        let size = with_media;
        if size > self.max_bytes || pieces.len() > u32::MAX as usize {
            return Err(format!(
                "a batch of {size} bytes does not fit in the spool cap of {} bytes",
                self.max_bytes
            ));
        }
        let kind = if media.is_empty() {
            KIND_OTLP_TRACES
        } else {
            KIND_OTLP_TRACES_WITH_MEDIA
        };
        pieces.parts[0] = std::borrow::Cow::Owned(header(kind, spans as u32, &pieces));
        self.make_room(size);
        let name = format!(
            "{:020}-{}-{:016x}{BATCH_SUFFIX}",
            unix_nanos(),
            std::process::id(),
            random_u64()
        );
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            for part in &pieces.parts {
                file.write_all(part)?;
            }
            file.sync_all()?;
            fs::rename(&temporary, self.dir.join(&name))
        };
        if let Err(error) = write() {
            let _ = fs::remove_file(&temporary);
            return Err(format!(
                "writing to the spool directory {} failed: {error}",
                self.dir.display()
            ));
        }
        Counters::add(&self.counters.spans_spooled, spans as u64);
        self.waiting = true;
        Ok(())
    }

    /// Whether batches may wait and it is time to try them (at the start, then at most every
    /// 30 seconds).
    pub(crate) fn due(&self) -> bool {
        self.waiting && self.last_try.is_none_or(|at| at.elapsed() >= RETRY_EVERY)
    }

    /// Sends the waiting batches, oldest first, each claimed first; stops at the first one that
    /// must wait. Returns the number of spans delivered.
    pub(crate) fn send_waiting(
        &mut self,
        mut send: impl FnMut(Batch) -> Result<(), Undelivered>,
    ) -> u64 {
        self.last_try = Some(Instant::now());
        let mut delivered = 0;
        for path in self.batches() {
            let Some(claimed) = claim(&path) else {
                continue; // another process took it
            };
            let batch = match read_batch(&claimed) {
                Ok(batch) => batch,
                Err(problem) => {
                    self.set_aside(&path, &claimed, &problem);
                    continue;
                }
            };
            let spans = batch.spans;
            match send(batch) {
                Ok(()) => {
                    let _ = fs::remove_file(&claimed);
                    Counters::add(&self.counters.spans_exported_from_spool, spans);
                    delivered += spans;
                }
                Err(Undelivered::Refused(reason)) => {
                    let _ = fs::remove_file(&claimed);
                    Counters::add(&self.counters.spans_dropped_export_failed, spans);
                    diagnostics::error(
                        "spool-refused",
                        format!("{spans} spooled span(s) were refused and deleted: {reason}"),
                    );
                }
                // Refused keys may fit another process; an unanswered copy may have been stored
                // (sent again later: a duplicate rather than a loss).
                Err(later) => {
                    let reason = later.into_reason();
                    let _ = fs::rename(&claimed, &path);
                    diagnostics::debug(|| format!("spooled batches wait: {reason}"));
                    return delivered;
                }
            }
        }
        self.waiting = false;
        delivered
    }

    /// The batches waiting, oldest first.
    fn batches(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| file_name(path).is_some_and(|n| n.ends_with(BATCH_SUFFIX)))
            .collect();
        paths.sort();
        paths
    }

    /// Deletes the oldest batches until `incoming` more bytes fit under the cap.
    fn make_room(&self, incoming: u64) {
        let batches = self.batches();
        let sizes: Vec<u64> = batches
            .iter()
            .map(|p| fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let mut total: u64 = sizes.iter().sum();
        for (path, size) in batches.iter().zip(sizes) {
            if total + incoming <= self.max_bytes {
                break;
            }
            let Some(claimed) = claim(path) else {
                continue;
            };
            let spans = read_header(&claimed).map_or(0, |(_, spans, _)| u64::from(spans));
            if fs::remove_file(&claimed).is_ok() {
                total -= size;
                Counters::add(&self.counters.spans_spool_evicted, spans);
                diagnostics::warn(
                    "spool-evicted",
                    format!(
                        "the spool directory {} is full ({} bytes): the oldest batches are \
                         deleted to make room (counted in stats().spans_spool_evicted)",
                        self.dir.display(),
                        self.max_bytes
                    ),
                );
            }
        }
    }

    fn set_aside(&self, path: &Path, claimed: &Path, problem: &str) {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".corrupt");
        let _ = fs::rename(claimed, &aside);
        Counters::add(&self.counters.spool_files_corrupt, 1);
        diagnostics::warn(
            "spool-corrupt",
            format!(
                "the spooled batch {} is unreadable ({problem}); it was moved aside as {}",
                path.display(),
                Path::new(&aside).display()
            ),
        );
    }

    /// Renames claims of processes that are gone back to batches.
    fn take_back_dead_claims(&self) {
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Some(name) = file_name(&path) else {
                continue;
            };
            let Some((batch, pid)) = name.rsplit_once(CLAIM_MARK) else {
                continue;
            };
            if pid.parse::<u32>().is_ok_and(|pid| !process_lives(pid)) {
                let _ = fs::rename(&path, self.dir.join(batch));
            }
        }
    }
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

/// Claims a batch for this process (an atomic rename); `None` when another process has it.
fn claim(path: &Path) -> Option<PathBuf> {
    let mut claimed = path.as_os_str().to_owned();
    claimed.push(format!("{CLAIM_MARK}{}", std::process::id()));
    let claimed = PathBuf::from(claimed);
    fs::rename(path, &claimed).ok().map(|()| claimed)
}

/// A file's body in parts, so that media bytes are written without being copied together; the
/// first part is the header once the rest is known.
#[derive(Default)]
struct Pieces<'a> {
    parts: Vec<std::borrow::Cow<'a, [u8]>>,
}

impl<'a> Pieces<'a> {
    fn owned(&mut self, bytes: Vec<u8>) {
        self.parts.push(std::borrow::Cow::Owned(bytes));
    }

    fn borrowed(&mut self, bytes: &'a [u8]) {
        self.parts.push(std::borrow::Cow::Borrowed(bytes));
    }

    /// A length-prefixed (u16 LE) short text.
    fn text(&mut self, text: &str) {
        let text = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
        let mut bytes = (text.len() as u16).to_le_bytes().to_vec();
        bytes.extend_from_slice(text);
        self.owned(bytes);
    }

    /// The length of the body (every part after the header).
    fn len(&self) -> usize {
        self.parts.iter().skip(1).map(|p| p.len()).sum()
    }
}

/// The media after the request body: a count (u32 LE), then for each the field, trace id,
/// observation id, content type, SHA-256 and reference as short texts, and the bytes (u32 LE
/// length first).
fn media_section<'a>(pieces: &mut Pieces<'a>, media: &'a [Upload]) {
    pieces.owned((media.len() as u32).to_le_bytes().to_vec());
    for upload in media {
        let item = &upload.media;
        pieces.text(item.field.as_str());
        pieces.text(&upload.trace_id);
        pieces.text(&upload.observation_id);
        pieces.text(&item.content_type);
        pieces.text(&item.sha256);
        pieces.text(&item.reference);
        pieces.owned((item.bytes.len() as u32).to_le_bytes().to_vec());
        pieces.borrowed(&item.bytes);
    }
}

/// Reads what [`media_section`] wrote.
fn read_media(mut bytes: &[u8]) -> Result<Vec<Upload>, String> {
    fn take<'b>(bytes: &mut &'b [u8], len: usize) -> Result<&'b [u8], String> {
        if bytes.len() < len {
            return Err("its media section is cut short".into());
        }
        let (head, rest) = bytes.split_at(len);
        *bytes = rest;
        Ok(head)
    }
    fn text(bytes: &mut &[u8]) -> Result<String, String> {
        let len = u16::from_le_bytes(take(bytes, 2)?.try_into().expect("2 bytes"));
        String::from_utf8(take(bytes, len.into())?.to_vec())
            .map_err(|_| "its media section has a text that is not UTF-8".to_string())
    }
    let count = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().expect("4 bytes"));
    let mut media = Vec::new();
    for _ in 0..count {
        let field = text(&mut bytes)?;
        let field = MediaField::parse(&field)
            .ok_or_else(|| format!("its media section names an unknown field {field:?}"))?;
        let trace_id = text(&mut bytes)?;
        let observation_id = text(&mut bytes)?;
        let content_type = text(&mut bytes)?;
        let sha256 = text(&mut bytes)?;
        let reference = text(&mut bytes)?;
        let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().expect("4 bytes"));
        let data = take(&mut bytes, len as usize)?;
        media.push(Upload {
            trace_id,
            observation_id,
            media: MediaAttachment::restored(
                field,
                content_type,
                std::sync::Arc::from(data),
                sha256,
                reference,
            ),
        });
    }
    if !bytes.is_empty() {
        return Err("it has bytes after its media section".into());
    }
    Ok(media)
}

fn header(kind: u8, spans: u32, body: &Pieces<'_>) -> Vec<u8> {
    let mut digest = Sha256::new();
    for part in body.parts.iter().skip(1) {
        digest.update(part);
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(kind);
    header.extend_from_slice(&spans.to_le_bytes());
    header.extend_from_slice(&(body.len() as u32).to_le_bytes());
    header.extend_from_slice(&digest.finalize());
    header
}

/// Kind, span count and body length from a file's header.
fn read_header(path: &Path) -> Result<(u8, u32, u32), String> {
    use std::io::Read as _;
    let mut bytes = [0u8; HEADER_LEN];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| format!("its header cannot be read: {e}"))?;
    parse_header(&bytes).map(|(kind, spans, len, _)| (kind, spans, len))
}

fn parse_header(bytes: &[u8]) -> Result<(u8, u32, u32, &[u8]), String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("it does not start with a spool header".into());
    }
    let kind = bytes[8];
    let spans = u32::from_le_bytes(bytes[9..13].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(bytes[13..17].try_into().expect("4 bytes"));
    Ok((kind, spans, len, &bytes[17..HEADER_LEN]))
}

fn read_batch(path: &Path) -> Result<Batch, String> {
    let bytes = fs::read(path).map_err(|e| format!("it cannot be read: {e}"))?;
    let (kind, spans, len, digest) = parse_header(&bytes)?;
    if kind != KIND_OTLP_TRACES && kind != KIND_OTLP_TRACES_WITH_MEDIA {
        return Err(format!("its kind {kind} is unknown to this version"));
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() != len as usize {
        return Err(format!(
            "it is truncated: {} of {len} body bytes",
            body.len()
        ));
    }
    if Sha256::digest(body).as_slice() != digest {
        return Err("its checksum does not match".into());
    }
    if kind == KIND_OTLP_TRACES {
        return Ok(Batch {
            spans: u64::from(spans),
            body: body.to_vec(),
            media: Vec::new(),
        });
    }
    let Some((length, rest)) = body.split_first_chunk::<4>() else {
        return Err("its request body is cut short".into());
    };
    let length = u32::from_le_bytes(*length) as usize;
    if rest.len() < length {
        return Err("its request body is cut short".into());
    }
    let (request, media) = rest.split_at(length);
    Ok(Batch {
        spans: u64::from(spans),
        body: request.to_vec(),
        media: read_media(media)?,
    })
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Whether process `pid` runs (on other systems than Unix: assumed, so claims are left alone).
#[allow(unsafe_code)]
fn process_lives(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when dropped.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "observe-spool-{name}-{}-{:x}",
            std::process::id(),
            random_u64()
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn spool(dir: &Path, max: u64) -> (Spool, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        (
            Spool::open(dir.to_path_buf(), max, counters.clone()).unwrap(),
            counters,
        )
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn batches_come_back_oldest_first_once() {
        let dir = temp_dir("order");
        let (mut spool, counters) = spool(&dir, 1 << 20);
        spool.keep(b"first", 1, &[]).unwrap();
        spool.keep(b"second", 2, &[]).unwrap();
        let mut seen = Vec::new();
        let delivered = spool.send_waiting(|batch| {
            let body = batch.body;
            seen.push(body);
            Ok(())
        });
        assert_eq!(seen, [b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(delivered, 3);
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        let stats = counters.snapshot();
        assert_eq!(
            (stats.spans_spooled, stats.spans_exported_from_spool),
            (3, 3)
        );
        assert_eq!(spool.send_waiting(|_| Ok(())), 0);
    }

    #[test]
    fn a_batch_that_must_wait_is_put_back_and_stops_the_round() {
        let dir = temp_dir("later");
        let (mut spool, _) = spool(&dir, 1 << 20);
        spool.keep(b"a", 1, &[]).unwrap();
        spool.keep(b"b", 1, &[]).unwrap();
        let mut tries = 0;
        spool.send_waiting(|_| {
            tries += 1;
            Err(Undelivered::GaveUp("connection refused".into()))
        });
        assert_eq!(tries, 1);
        assert_eq!(names(&dir).len(), 2);
        assert!(names(&dir).iter().all(|n| n.ends_with(".batch")));
    }

    #[test]
    fn the_cap_evicts_the_oldest_and_counts_their_spans() {
        let dir = temp_dir("cap");
        let each = (HEADER_LEN + 100) as u64;
        let (mut spool, counters) = spool(&dir, 2 * each);
        for spans in [1, 2, 3] {
            spool.keep(&[spans as u8; 100], spans, &[]).unwrap();
        }
        assert_eq!(counters.snapshot().spans_spool_evicted, 1);
        let mut kept = Vec::new();
        spool.send_waiting(|batch| {
            let body = batch.body;
            kept.push(body[0]);
            Ok(())
        });
        assert_eq!(kept, [2, 3]);
        let err = spool.keep(&[0; 1000], 1, &[]).unwrap_err();
        assert_eq!(
            err,
            format!(
                "a batch of {} bytes does not fit in the spool cap of {} bytes",
                HEADER_LEN + 1000,
                2 * each
            )
        );
    }

    #[test]
    fn corrupt_and_truncated_files_are_moved_aside() {
        let dir = temp_dir("corrupt");
        let (mut spool, counters) = spool(&dir, 1 << 20);
        spool.keep(b"good body", 1, &[]).unwrap();
        spool.keep(b"will be cut", 1, &[]).unwrap();
        let batches = spool.batches();
        let bytes = fs::read(&batches[1]).unwrap();
        fs::write(&batches[1], &bytes[..bytes.len() - 3]).unwrap();
        fs::write(
            dir.join("00000000000000000000-1-0.batch"),
            b"not a spool file",
        )
        .unwrap();
        let mut sent = Vec::new();
        spool.send_waiting(|batch| {
            let body = batch.body;
            sent.push(body);
            Ok(())
        });
        assert_eq!(sent, [b"good body".to_vec()]);
        assert_eq!(counters.snapshot().spool_files_corrupt, 2);
        let left = names(&dir);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left.iter().all(|n| n.ends_with(".batch.corrupt")),
            "{left:?}"
        );
    }

    #[test]
    fn a_claim_of_a_dead_process_is_taken_back_and_a_live_one_is_left() {
        let dir = temp_dir("claims");
        let (mut spool, _) = spool(&dir, 1 << 20);
        spool.keep(b"x", 1, &[]).unwrap();
        spool.keep(b"y", 1, &[]).unwrap();
        let batches = spool.batches();
        // A pid far above any real one is not alive.
        let dead = dir.join(format!(
            "{}{CLAIM_MARK}999999999",
            file_name(&batches[0]).unwrap()
        ));
        fs::rename(&batches[0], &dead).unwrap();
        let live = dir.join(format!(
            "{}{CLAIM_MARK}{}",
            file_name(&batches[1]).unwrap(),
            std::process::id()
        ));
        fs::rename(&batches[1], &live).unwrap();
        let (mut reopened, _) = self::spool(&dir, 1 << 20);
        let mut sent = Vec::new();
        reopened.send_waiting(|batch| {
            let body = batch.body;
            sent.push(body);
            Ok(())
        });
        #[cfg(unix)]
        assert_eq!(sent, [b"x".to_vec()]);
        assert!(live.exists(), "a live process's claim is left alone");
    }

    fn image(bytes: usize) -> Upload {
        let data: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
        let (sha256, _) = crate::media::hash(&data);
        Upload {
            trace_id: "2d711642b726b04401627ca9fbac32f5".into(),
            observation_id: "0000000000000007".into(),
            media: MediaAttachment::restored(
                MediaField::Output,
                "image/png".into(),
                std::sync::Arc::from(data),
                sha256,
                "@@@langfuseMedia:type=image/png|id=x|source=bytes@@@".into(),
            ),
        }
    }

    #[test]
    fn media_come_back_with_their_batch_and_what_does_not_fit_is_left_out() {
        let dir = temp_dir("media");
        let (mut spool, counters) = spool(&dir, 4096);
        spool
            .keep(b"with media", 2, &[image(1000), image(10)])
            .unwrap();
        spool.keep(b"too large", 1, &[image(5000)]).unwrap();
        let mut seen = Vec::new();
        spool.send_waiting(|batch| {
            let media: Vec<_> = batch
                .media
                .iter()
                .map(|u| {
                    (
                        u.trace_id.clone(),
                        u.observation_id.clone(),
                        u.media.field,
                        u.media.content_type.clone(),
                        u.media.bytes.len(),
                        u.media.media_id.clone(),
                    )
                })
                .collect();
            seen.push((batch.body, batch.spans, media));
            Ok(())
        });
        let id = |n| crate::media::hash(&(0..n).map(|i| i as u8).collect::<Vec<u8>>()).1;
        let item = |n: usize| {
            (
                "2d711642b726b04401627ca9fbac32f5".to_string(),
                "0000000000000007".to_string(),
                MediaField::Output,
                "image/png".to_string(),
                n,
                id(n),
            )
        };
        assert_eq!(
            seen,
            [
                (b"with media".to_vec(), 2, vec![item(1000), item(10)]),
                (b"too large".to_vec(), 1, vec![]),
            ]
        );
        let stats = counters.snapshot();
        assert_eq!((stats.spans_spooled, stats.media_failed), (3, 1));
    }
}
