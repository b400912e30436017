//! `examples/vision.rs`: without keys the console shows the image as `<image/png 1 KB>`; with the
//! fake Langfuse server the image is uploaded once and the input holds its reference.

mod support;

use std::time::Duration;

use support::{by_name, clear_sdk_environment, example_command, run_example, FakeLangfuse};

#[test]
fn without_keys_the_console_shows_the_image_by_type_and_size() {
    let mut command = example_command("vision");
    clear_sdk_environment(&mut command);
    let output = command.output().expect("run the example");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "A single transparent pixel.\n"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"{"image_url":{"url":"<image/png 1 KB>"}"#),
        "{stderr}"
    );
}

#[test]
fn with_langfuse_the_image_is_uploaded_once() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-vision", "sk-lf-vision");
    run_example("vision", &[], &server);
    let spans = server.wait_for_spans(1, Duration::from_secs(30));
    let input = by_name(&spans, "describe-image")
        .str_attr("langfuse.observation.input")
        .unwrap()
        .to_string();
    let records = server.media_records();
    assert_eq!(records.len(), 1);
    let id = records[0]["mediaId"].as_str().unwrap();
    assert!(
        input.contains(&format!(
            "@@@langfuseMedia:type=image/png|id={id}|source=base64_data_uri@@@"
        )),
        "{input}"
    );
    assert_eq!(records[0]["uploadedLength"], serde_json::json!(67));
    assert_eq!(server.media_upload_count(), 1);
}
