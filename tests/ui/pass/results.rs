//! Return types recognised as `Result`: `Ok` is the output, `Err` marks the observation failed.
#![deny(warnings)]

use observe_runtime::observe;

mod errors {
    pub type Result<T> = std::result::Result<T, String>;
}

#[derive(Debug)]
struct DebugOnly;

/// Neither `Display` nor `Debug`: recorded with a placeholder.
struct Opaque;

#[observe]
fn full_path(ok: bool) -> std::result::Result<u8, String> {
    if ok {
        Ok(1)
    } else {
        Err("full path failed".to_string())
    }
}

#[observe]
fn io_result(ok: bool) -> std::io::Result<u8> {
    if ok {
        Ok(2)
    } else {
        Err(std::io::Error::other("io failed"))
    }
}

#[observe]
fn alias(ok: bool) -> errors::Result<u8> {
    if ok {
        Ok(3)
    } else {
        Err("alias failed".to_string())
    }
}

#[observe]
fn unit_ok(ok: bool) -> Result<(), DebugOnly> {
    if ok {
        Ok(())
    } else {
        Err(DebugOnly)
    }
}

#[observe]
fn boxed_error(ok: bool) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    if ok {
        Ok(5)
    } else {
        Err("boxed failed".into())
    }
}

#[observe(capture_output = false)]
fn error_without_output(ok: bool) -> Result<u8, String> {
    if ok {
        Ok(6)
    } else {
        Err("still an error".to_string())
    }
}

#[observe]
fn not_displayable() -> Result<u8, Opaque> {
    Err(Opaque)
}

fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    for ok in [true, false] {
        let _ = full_path(ok);
        let _ = io_result(ok);
        let _ = alias(ok);
        let _ = unit_ok(ok);
        let _ = boxed_error(ok);
        let _ = error_without_output(ok);
    }
    let _ = not_displayable();

    guard.flush().unwrap();
    let spans = memory.spans();
    let outputs: Vec<Option<String>> = spans.iter().map(|s| s.output.clone()).collect();
    let statuses: Vec<Option<String>> = spans.iter().map(|s| s.status_message.clone()).collect();
    let some = |text: &str| Some(text.to_string());
    assert_eq!(
        outputs[..6],
        [some("1"), some("2"), some("3"), None, some("5"), None]
    );
    assert_eq!(
        statuses[6..12],
        [
            some("full path failed"),
            some("io failed"),
            some("alias failed"),
            some("DebugOnly"),
            some("boxed failed"),
            some("still an error"),
        ]
    );
    assert!(spans[6..]
        .iter()
        .all(|s| s.level == observe_runtime::Level::Error));
    assert!(spans[..6]
        .iter()
        .all(|s| s.level == observe_runtime::Level::Default));
}
