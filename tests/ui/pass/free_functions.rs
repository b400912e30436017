//! Free functions: visibility, no arguments, no return type, `mut` arguments, `unsafe fn`,
//! early `return` and `?`.
#![deny(warnings)]

use observe_runtime::observe;

#[observe]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[observe]
pub(crate) fn crate_visible(text: &str) -> usize {
    text.len()
}

#[observe]
pub fn no_arguments() -> &'static str {
    "constant"
}

#[observe]
fn no_return_type(note: String) {
    let _ = note;
}

#[observe]
fn unit_return_type() -> () {}

#[observe]
fn mutable_arguments(mut count: u32, mut items: Vec<u32>) -> Vec<u32> {
    count += 1;
    items.push(count);
    items
}

/// # Safety
/// `pointer` must be valid for reads.
#[observe]
unsafe fn read(pointer: *const u8) -> u8 {
    *pointer
}

#[observe]
fn early_return(n: i32) -> i32 {
    if n < 0 {
        return 0;
    }
    n * 2
}

#[observe]
fn question_mark(text: &str) -> Result<i32, std::num::ParseIntError> {
    let n: i32 = text.parse()?;
    if n == 0 {
        return Ok(-1);
    }
    Ok(n)
}

#[observe]
fn boxed_error(text: &str) -> Result<u8, Box<dyn std::error::Error>> {
    Ok(text.parse::<u8>()?)
}

#[observe]
#[must_use]
#[inline]
fn with_other_attributes(x: u8) -> u8 {
    #![allow(clippy::identity_op)]
    x + 0
}

/// Arguments named like the macro's locals neither clash with nor see them.
#[observe]
fn same_names_as_generated_locals(__observe: u8, __observe_ret: u8, __observe_limit: u8) -> u8 {
    __observe + __observe_ret + __observe_limit
}

#[observe]
fn never_returns(code: i32) -> ! {
    if code > 0 {
        panic!("giving up with {code}");
    }
    std::process::exit(code)
}

fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    assert_eq!(add(1, 2), 3);
    assert_eq!(crate_visible("abc"), 3);
    assert_eq!(no_arguments(), "constant");
    no_return_type("hello".to_string());
    unit_return_type();
    assert_eq!(mutable_arguments(1, vec![7]), vec![7, 2]);
    assert_eq!(unsafe { read(&5) }, 5);
    assert_eq!(early_return(-3), 0);
    assert_eq!(early_return(3), 6);
    assert_eq!(question_mark("12"), Ok(12));
    assert!(question_mark("x").is_err());
    assert_eq!(question_mark("0"), Ok(-1));
    assert!(boxed_error("300").is_err());
    assert_eq!(with_other_attributes(4), 4);
    assert_eq!(same_names_as_generated_locals(1, 2, 3), 6);
    std::panic::set_hook(Box::new(|_| {}));
    assert!(std::panic::catch_unwind(|| never_returns(1)).is_err());
    let _ = std::panic::take_hook();

    guard.flush().unwrap();
    let names: Vec<String> = memory.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "add",
            "crate_visible",
            "no_arguments",
            "no_return_type",
            "unit_return_type",
            "mutable_arguments",
            "read",
            "early_return",
            "early_return",
            "question_mark",
            "question_mark",
            "question_mark",
            "boxed_error",
            "with_other_attributes",
            "same_names_as_generated_locals",
            "never_returns",
        ]
    );
}
