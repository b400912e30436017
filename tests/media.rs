//! Media in captured values: a `data:` URI, an OpenAI image part, an Anthropic or Gemini base64
//! block, OpenAI input audio and explicit `Media` values are replaced by Langfuse's media
//! reference before any field limit, their bytes kept beside the span (the memory exporter keeps
//! them for tests); unknown types and a disabled switch leave text.

mod support;

use observe_runtime::{
    current_observation, observe, Config, Exporter, FinishedSpan, Media, MediaField, MemoryExporter,
};
use serde_json::{json, Value};

use support::serial;

/// A tiny PNG-like payload and what Langfuse derives from it (computed with Python's hashlib).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake image";
const PNG_BASE64: &str = "iVBORw0KGgpmYWtlIGltYWdl";
const PNG_SHA256: &str = "T5YND2oVSmGVUnDBOTIY5Y6vxoIjJIgYr7mfQKgltPw=";
const PNG_ID: &str = "T5YND2oVSmGVUnDBOTIY5Y";
const WAV: &[u8] = b"RIFFfake wav";
const WAV_BASE64: &str = "UklGRmZha2Ugd2F2";
const WAV_ID: &str = "XdQNNDtBsEHZyG3OW_do1A";

fn png_reference(source: &str) -> String {
    format!("@@@langfuseMedia:type=image/png|id={PNG_ID}|source={source}@@@")
}

fn with_memory(upload: bool, run: impl FnOnce()) -> Vec<FinishedSpan> {
    let _serial = serial();
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .media_upload(upload)
        .max_field_bytes(1024)
        .init()
        .expect("init");
    run();
    drop(guard);
    memory.spans()
}

#[observe(as_type = "generation")]
fn describe_image(messages: Value) -> String {
    let _ = messages;
    "a cat".into()
}

#[test]
fn a_data_uri_in_a_chat_message_becomes_a_reference_and_an_attachment() {
    let spans = with_memory(true, || {
        describe_image(json!([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_BASE64}")}}
        ]}]));
    });
    let span = &spans[0];
    let input: Value = serde_json::from_str(span.input.as_deref().unwrap()).unwrap();
    assert_eq!(
        input["messages"][0]["content"][1]["image_url"]["url"],
        json!(png_reference("base64_data_uri"))
    );
    assert_eq!(span.media.len(), 1);
    let media = &span.media[0];
    assert_eq!(
        (media.field, media.content_type.as_str(), &*media.bytes),
        (MediaField::Input, "image/png", PNG)
    );
    assert_eq!(
        (media.sha256.as_str(), media.media_id.as_str()),
        (PNG_SHA256, PNG_ID)
    );
}

#[observe]
fn blocks(anthropic: Value, gemini: Value, audio: Value) -> Media {
    let _ = (anthropic, gemini, audio);
    Media::new(PNG, "image/png")
}

#[test]
fn provider_blocks_and_explicit_media_are_replaced() {
    let spans = with_memory(true, || {
        blocks(
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}}),
            json!({"inline_data": {"mime_type": "image/png", "data": PNG_BASE64}}),
            json!({"type": "input_audio", "input_audio": {"format": "wav", "data": WAV_BASE64}}),
        );
    });
    let span = &spans[0];
    let input: Value = serde_json::from_str(span.input.as_deref().unwrap()).unwrap();
    assert_eq!(
        input["anthropic"]["source"]["data"],
        json!(png_reference("base64_data_uri"))
    );
    assert_eq!(
        input["anthropic"]["source"]["media_type"],
        json!("image/png")
    );
    assert_eq!(
        input["gemini"]["inline_data"]["data"],
        json!(png_reference("base64_data_uri"))
    );
    assert_eq!(
        input["audio"]["input_audio"]["data"],
        json!(format!(
            "@@@langfuseMedia:type=audio/wav|id={WAV_ID}|source=base64_data_uri@@@"
        ))
    );
    assert_eq!(
        span.output.as_deref(),
        Some(format!("\"{}\"", png_reference("bytes")).as_str())
    );
    let found: Vec<(MediaField, &str, &[u8])> = span
        .media
        .iter()
        .map(|m| (m.field, m.content_type.as_str(), &*m.bytes))
        .collect();
    assert_eq!(
        found,
        [
            (MediaField::Input, "image/png", PNG),
            (MediaField::Input, "image/png", PNG),
            (MediaField::Input, "audio/wav", WAV),
            (MediaField::Output, "image/png", PNG),
        ]
    );
}

#[test]
fn a_large_image_costs_a_reference_not_a_cut_string() {
    let big = vec![7u8; 3 * 1024 * 1024];
    let uri = format!("data:image/jpeg;base64,{}", base64_encode(&big));
    let spans = with_memory(true, || {
        describe_image(json!({"image": uri}));
    });
    let span = &spans[0];
    let input = span.input.as_deref().unwrap();
    assert!(input.len() < 200, "{input}");
    assert!(
        input.contains("@@@langfuseMedia:type=image/jpeg|id="),
        "{input}"
    );
    assert_eq!(span.media[0].bytes.len(), big.len());
}

#[test]
fn unknown_types_and_a_disabled_switch_leave_text() {
    // Types outside Langfuse's `MediaContentType` (it would answer HTTP 400 and the media would
    // be lost) stay text, and so does every type with uploads switched off.
    for (kind, upload) in [
        ("image/x-unknown", true),
        ("image/x-icon", true),
        ("image/png", false),
    ] {
        let uri = format!("data:{kind};base64,{PNG_BASE64}");
        let spans = with_memory(upload, || {
            describe_image(json!({"image": uri}));
        });
        assert_eq!(
            spans[0].input.as_deref(),
            Some(format!(r#"{{"messages":{{"image":"{uri}"}}}}"#).as_str()),
            "{kind}"
        );
        assert!(spans[0].media.is_empty(), "{kind}");
    }
}

#[test]
fn other_names_of_wav_audio_are_stored_as_audio_wav() {
    for kind in ["audio/x-wav", "audio/wave", "Audio/Vnd.Wave"] {
        let spans = with_memory(true, || {
            describe_image(json!({"audio": format!("data:{kind};base64,{WAV_BASE64}")}));
        });
        let reference =
            format!("@@@langfuseMedia:type=audio/wav|id={WAV_ID}|source=base64_data_uri@@@");
        assert_eq!(
            spans[0].input.as_deref(),
            Some(format!(r#"{{"messages":{{"audio":"{reference}"}}}}"#).as_str()),
            "{kind}"
        );
        let media: Vec<_> = spans[0]
            .media
            .iter()
            .map(|m| (m.content_type.as_str(), &*m.bytes, m.reference.as_str()))
            .collect();
        assert_eq!(media, [("audio/wav", WAV, reference.as_str())], "{kind}");
    }
}

#[test]
fn setters_replace_media_too() {
    let spans = with_memory(true, || {
        #[observe]
        fn manual() {
            current_observation()
                .output(json!({"chart": Media::new(PNG, "image/png")}))
                .metadata("thumbnail", format!("data:image/png;base64,{PNG_BASE64}"));
        }
        manual();
    });
    let span = &spans[0];
    // Inside `json!` a `Media` is serialized at once, as a data URI, and found again.
    assert_eq!(
        span.output.as_deref(),
        Some(format!(r#"{{"chart":"{}"}}"#, png_reference("base64_data_uri")).as_str())
    );
    assert_eq!(
        span.metadata,
        [(
            "thumbnail".to_string(),
            format!("\"{}\"", png_reference("base64_data_uri"))
        )]
    );
    let fields: Vec<MediaField> = span.media.iter().map(|m| m.field).collect();
    assert_eq!(fields, [MediaField::Output, MediaField::Metadata]);
}

fn base64_encode(bytes: &[u8]) -> String {
    support::base64_encode(bytes)
}

/// 3000 bytes, more than the field limit once in base64 (its hash computed with Python's
/// hashlib).
fn large_png() -> Vec<u8> {
    (0..3000).map(|i| (i % 251) as u8).collect()
}
const LARGE_PNG_ID: &str = "6MpL-D9WFSwBZJ-IvXyRsV";

#[test]
fn bridged_gen_ai_messages_carry_their_media() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let large = large_png();
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_BASE64}")}}
    ]}])
    .to_string();
    let audio =
        json!({"type": "input_audio", "input_audio": {"data": WAV_BASE64, "format": "wav"}})
            .to_string();
    // Recorded with `%`, through `Debug`, past the field limit of 1024 bytes.
    let answer = format!("data:image/png;base64,{}", base64_encode(&large));
    assert!(answer.len() > 4000);
    let spans = with_memory(true, || {
        let subscriber = tracing_subscriber::registry().with(observe_runtime::tracing_layer());
        tracing::subscriber::with_default(subscriber, || {
            let chat = tracing::info_span!(
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "gpt-4o",
                gen_ai.system_instructions = audio.as_str(),
                gen_ai.input.messages = messages.as_str(),
                gen_ai.completion = tracing::field::Empty,
            );
            chat.record("gen_ai.completion", tracing::field::display(&answer));
        });
    });
    let span = &spans[0];
    assert_eq!(span.name, "chat");
    assert_eq!(
        span.input.as_deref(),
        Some(
            format!(
                r#"[{{"content":[{{"text":"What is this?","type":"text"}},{{"image_url":{{"url":"{}"}},"type":"image_url"}}],"role":"user"}}]"#,
                png_reference("base64_data_uri")
            )
            .as_str()
        )
    );
    assert_eq!(
        span.output.as_deref(),
        Some(
            format!(
                r#""@@@langfuseMedia:type=image/png|id={LARGE_PNG_ID}|source=base64_data_uri@@@""#
            )
            .as_str()
        )
    );
    assert_eq!(
        span.metadata,
        [(
            "gen_ai.system_instructions".to_string(),
            format!(
                r#"{{"input_audio":{{"data":"@@@langfuseMedia:type=audio/wav|id={WAV_ID}|source=base64_data_uri@@@","format":"wav"}},"type":"input_audio"}}"#
            )
        )]
    );
    let found: Vec<(MediaField, &str, &[u8])> = span
        .media
        .iter()
        .map(|m| (m.field, m.content_type.as_str(), &*m.bytes))
        .collect();
    assert_eq!(
        found,
        [
            (MediaField::Metadata, "audio/wav", WAV),
            (MediaField::Input, "image/png", PNG),
            (MediaField::Output, "image/png", large.as_slice()),
        ]
    );
}
