//! Memory while a large image is captured, measured with a counting global allocator (live bytes
//! on all threads, and their peak): a 30 MB image in a `data:` URI costs one decode into the
//! bytes kept for upload, no copy of them or of its 40 MB of base64 text, and the span itself
//! stays small. A test binary of its own, so
//! that nothing else allocates meanwhile.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use observe_runtime::{observe, Config, Exporter, MediaField, MemoryExporter};
use serde_json::{json, Value};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grew(by: i64) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const DECODED: usize = 30 * 1024 * 1024;

#[observe(as_type = "generation")]
fn describe(messages: &Value) -> usize {
    messages.as_array().map_or(0, Vec::len)
}

#[test]
fn a_30_mb_image_is_decoded_once_and_the_span_stays_small() {
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .media_upload(true)
        .init()
        .expect("init");
    let image: Vec<u8> = (0..DECODED).map(|i| (i % 251) as u8).collect();
    let uri = format!("data:image/jpeg;base64,{}", support::base64_encode(&image));
    let text_len = uri.len();
    drop(image);
    // What the user holds: the message with its 40 MB of base64 text.
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": uri}}
    ]}]);

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    assert_eq!(describe(&messages), 1);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let held = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "capture of a {DECODED}-byte image ({text_len} bytes of base64 text): peak {peak} bytes \
         above what the user held, {held} bytes held after"
    );
    // One decode into the attachment's own allocation: a copy of the bytes (or of the text)
    // would take the peak to twice the image or more.
    assert!(
        peak < (DECODED + DECODED / 2) as i64,
        "peak {peak} bytes during capture: over 1.5 x {DECODED}"
    );
    assert!(
        held < DECODED as i64 + 1024 * 1024,
        "{held} bytes held after capture: the decoded image once, and little else"
    );

    drop(guard);
    let spans = memory.spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    let input = span.input.as_deref().expect("an input");
    assert!(input.len() < 300, "{} bytes: {input}", input.len());
    assert!(
        input.contains("\"url\":\"@@@langfuseMedia:type=image/jpeg|id="),
        "{input}"
    );
    let media: Vec<(MediaField, &str, usize)> = span
        .media
        .iter()
        .map(|m| (m.field, m.content_type.as_str(), m.bytes.len()))
        .collect();
    assert_eq!(media, [(MediaField::Input, "image/jpeg", DECODED)]);
}
