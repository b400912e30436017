//! A generation with an image in its input: the image is uploaded to Langfuse once and the
//! input shows it, instead of megabytes of base64 cut at the field limit.
//!
//! Run it with `cargo run --example vision`. The "model" is a local stand-in, so it needs neither
//! network nor API key. Without `LANGFUSE_*` variables the trace is printed here, the image shown
//! as `<image/png 1 KB>`; with `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` (and
//! `LANGFUSE_BASE_URL`) it goes to Langfuse with the image uploaded.

use observe_runtime::{current_observation, observe, Media, Usage};
use serde_json::json;

/// A 1x1 transparent PNG.
const PIXEL: [u8; 67] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// A stand-in for a vision model call: the messages (with the image as a data URI, as OpenAI
/// takes it) are its input.
#[observe(name = "describe-image", as_type = "generation")]
fn describe(messages: serde_json::Value) -> String {
    let _ = messages;
    current_observation()
        .model("local-vision")
        .usage(Usage::new(85, 7));
    "A single transparent pixel.".to_string()
}

fn main() -> Result<(), observe_runtime::ConfigError> {
    let _guard = observe_runtime::init()?;
    let image = Media::new(PIXEL.to_vec(), "image/png");
    // `Media` inside `json!` becomes a data URI, which capture finds and uploads.
    let answer = describe(json!([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "text", "text": "What is in this image?"}
    ]}]));
    println!("{answer}");
    Ok(())
}
