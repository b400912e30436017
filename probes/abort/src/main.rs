//! A program that panics inside nested observations. Built with `panic = "abort"`
//! (`cargo build -p observe-abort-probe --profile abort`), the panic aborts the process without
//! unwinding; `tests/exit_paths.rs` checks that the open observations still arrive, as errors.
//! Configured by the `LANGFUSE_*` variables.

use observe_runtime::observe;

#[observe]
fn finished_step() -> u32 {
    1
}

#[observe(as_type = "generation")]
fn call_model(prompt: &str) -> String {
    if prompt.is_empty() {
        return String::new();
    }
    panic!("model quota exhausted");
}

#[observe(as_type = "agent")]
fn agent() -> String {
    finished_step();
    call_model("hello")
}

fn main() {
    let _guard = observe_runtime::init().expect("configured by LANGFUSE_* variables");
    println!("panic strategy abort: {}", cfg!(panic = "abort"));
    agent();
}
