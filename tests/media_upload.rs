//! Media uploaded to the fake Langfuse server as Langfuse's API takes it: registered for its
//! trace, observation and field, the bytes `PUT` to the URL handed out with their checksum, the
//! outcome reported with `PATCH`; once per content, retried and reported on failure, nothing for
//! a sampled-out trace, and the span itself small.

mod support;

use std::time::Duration;

use observe_runtime::{observe, stats, Config, FlushGuard, Media};
use serde_json::{json, Value};

use support::{by_name, serial, FakeLangfuse, Fault};

const PUBLIC_KEY: &str = "pk-lf-media";
const SECRET_KEY: &str = "sk-lf-media";
const WAIT: Duration = Duration::from_secs(30);
/// Computed with Python's hashlib for `PNG`.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake image";
const PNG_SHA256: &str = "T5YND2oVSmGVUnDBOTIY5Y6vxoIjJIgYr7mfQKgltPw=";
const PNG_ID: &str = "T5YND2oVSmGVUnDBOTIY5Y";

fn init(server: &FakeLangfuse, sample_rate: f64) -> FlushGuard {
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(server.base_url())
        .sample_rate(sample_rate)
        .timeout(Duration::from_secs(10))
        .shutdown_timeout(Duration::from_secs(30))
        .init()
        .expect("init")
}

#[observe(as_type = "generation")]
fn look(image: Media) -> String {
    let _ = image;
    "a cat".into()
}

#[test]
fn an_image_is_registered_uploaded_and_reported_once() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = init(&server, 1.0);
    look(Media::new(PNG, "image/png"));
    look(Media::new(PNG, "image/png"));
    drop(guard);

    let spans = server.wait_for_spans(2, WAIT);
    let reference = format!("@@@langfuseMedia:type=image/png|id={PNG_ID}|source=bytes@@@");
    for span in &spans {
        assert_eq!(
            span.json_attr("langfuse.observation.input"),
            Some(json!({"image": reference}))
        );
    }
    let records = server.media_records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["mediaId"], json!(PNG_ID));
    assert_eq!(record["sha256Hash"], json!(PNG_SHA256));
    assert_eq!(record["contentType"], json!("image/png"));
    assert_eq!(record["uploadCount"], json!(1));
    assert_eq!(record["uploadedLength"], json!(PNG.len()));
    assert_eq!(record["patch"]["uploadHttpStatus"], json!(200));
    let mut registered: Vec<(String, String, String)> = record["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["traceId"].as_str().unwrap().to_string(),
                r["observationId"].as_str().unwrap().to_string(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    registered.sort();
    let mut expected: Vec<(String, String, String)> = spans
        .iter()
        .map(|s| (s.trace_id(), s.span_id(), "input".to_string()))
        .collect();
    expected.sort();
    assert_eq!(registered, expected);
    assert_eq!(server.uploaded_bytes(PNG_ID).as_deref(), Some(PNG));
    assert_eq!(
        server.media_upload_count(),
        1,
        "the same bytes are uploaded once"
    );
    assert_eq!(server.media_registration_count(), 2);
    let upload = server
        .media_requests()
        .into_iter()
        .find(|r| r.is_media_upload())
        .unwrap();
    assert_eq!(upload.header("x-amz-checksum-sha256"), Some(PNG_SHA256));
    assert_eq!(upload.header("x-ms-blob-type"), Some("BlockBlob"));
    assert_eq!(upload.header("content-type"), Some("image/png"));
    let stats = stats();
    assert_eq!(
        (
            stats.media_uploaded,
            stats.media_deduplicated,
            stats.media_failed,
            stats.media_bytes_uploaded
        ),
        (1, 1, 0, PNG.len() as u64)
    );
}

#[test]
fn a_failed_upload_is_retried_reported_and_leaves_the_reference() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_media_upload_fault(Some(Fault::s3_error(
        500,
        "InternalError",
        "We encountered an internal error. Please try again.",
    )));
    let guard = init(&server, 1.0);
    look(Media::new(PNG, "image/png"));
    drop(guard);
    let spans = server.wait_for_spans(1, WAIT);
    assert!(spans[0]
        .str_attr("langfuse.observation.input")
        .unwrap()
        .contains(PNG_ID));
    assert_eq!(server.media_upload_count(), 3, "three attempts");
    let record = &server.media_records()[0];
    assert_eq!(record["patch"]["uploadHttpStatus"], json!(500));
    assert!(record["patch"]["uploadHttpError"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    let stats = stats();
    assert_eq!((stats.media_uploaded, stats.media_failed), (0, 1));
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("the image/png of observation "),
        "{:?}",
        stats.last_error
    );
}

#[test]
fn a_sampled_out_trace_uploads_nothing() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = init(&server, 0.0);
    look(Media::new(PNG, "image/png"));
    drop(guard);
    assert!(server.media_requests().is_empty());
}

#[test]
fn a_large_image_is_uploaded_once_and_the_span_stays_small() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = init(&server, 1.0);
    let big: Vec<u8> = (0..30 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    #[observe(as_type = "generation")]
    fn describe(messages: Value) -> usize {
        messages.to_string().len()
    }
    let uri = format!("data:image/jpeg;base64,{}", support::base64_encode(&big));
    let captured_len = describe(
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]}]),
    );
    assert!(captured_len > 40 * 1024 * 1024);
    drop(guard);
    let spans = server.wait_for_spans(1, WAIT);
    let input = by_name(&spans, "describe")
        .str_attr("langfuse.observation.input")
        .unwrap()
        .to_string();
    assert!(input.len() < 300, "{input}");
    assert_eq!(server.media_upload_count(), 1);
    let record = &server.media_records()[0];
    assert_eq!(record["uploadedLength"], json!(big.len()));
    assert_eq!(record["contentType"], json!("image/jpeg"));
}

#[observe(as_type = "generation")]
fn compare(images: Vec<Media>) -> usize {
    images.len()
}

#[test]
fn distinct_images_upload_four_at_once_and_duplicates_once() {
    let _serial = serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    // Each upload waits at the server until four are in flight at once.
    server.hold_media_uploads_until(4);
    let guard = init(&server, 1.0);
    let images: Vec<Vec<u8>> = (0..6u8)
        .map(|n| [PNG, &[b'#', b'0' + n]].concat())
        .collect();
    let mut captured: Vec<Media> = images
        .iter()
        .map(|bytes| Media::new(bytes.clone(), "image/png"))
        .collect();
    captured.push(Media::new(images[0].clone(), "image/png"));
    captured.push(Media::new(images[5].clone(), "image/png"));
    assert_eq!(compare(captured), 8);
    guard.flush().expect("flush");

    assert_eq!(
        server.peak_media_uploads_in_flight(),
        4,
        "four uploads at once, never more"
    );
    assert_eq!(server.media_upload_count(), 6, "each content once");
    assert_eq!(server.media_registration_count(), 8);
    let records = server.media_records();
    assert_eq!(records.len(), 6);
    for record in &records {
        assert_eq!(record["uploadCount"], json!(1), "{record}");
        assert_eq!(record["patch"]["uploadHttpStatus"], json!(200), "{record}");
    }
    let stats = stats();
    assert_eq!(
        (
            stats.media_uploaded,
            stats.media_deduplicated,
            stats.media_failed,
            stats.media_bytes_uploaded
        ),
        (6, 2, 0, 6 * (PNG.len() as u64 + 2))
    );
    let spans = server.wait_for_spans(1, WAIT);
    let input = spans[0].json_attr("langfuse.observation.input").unwrap();
    assert_eq!(input["images"].as_array().map(Vec::len), Some(8));
    drop(guard);
}
