//! Pattern arguments: the identifiers they bind are captured by name.
#![deny(warnings)]

use observe_runtime::observe;

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Point {
    x: i32,
    y: i32,
}

struct Wrapper(u8);

#[observe]
fn tuple((a, b): (u8, u8)) -> u16 {
    u16::from(a) + u16::from(b)
}

#[observe]
fn structure(Point { x, y }: Point) -> i32 {
    x * y
}

#[observe]
fn renamed_fields(
    Point {
        x: horizontal,
        y: _,
    }: Point,
    mut scale: i32,
) -> i32 {
    scale += 1;
    horizontal * scale
}

#[observe]
fn tuple_struct(Wrapper(inner): Wrapper, _unused: u8, _: u8) -> u8 {
    inner
}

#[observe]
fn reference(&value: &u32, [first, second]: [u8; 2]) -> u32 {
    value + u32::from(first) + u32::from(second)
}

#[observe]
fn mutable_pattern((mut total, step): (u32, u32)) -> u32 {
    total += step;
    total
}

fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    assert_eq!(tuple((1, 2)), 3);
    assert_eq!(structure(Point { x: 2, y: 3 }), 6);
    assert_eq!(renamed_fields(Point { x: 2, y: 3 }, 2), 6);
    assert_eq!(tuple_struct(Wrapper(4), 0, 0), 4);
    assert_eq!(reference(&1, [2, 3]), 6);
    assert_eq!(mutable_pattern((1, 2)), 3);

    guard.flush().unwrap();
    let inputs: Vec<Option<String>> = memory.spans().iter().map(|s| s.input.clone()).collect();
    assert_eq!(
        inputs,
        [
            Some(r#"{"a":1,"b":2}"#.to_string()),
            Some(r#"{"x":2,"y":3}"#.to_string()),
            Some(r#"{"horizontal":2,"scale":2}"#.to_string()),
            Some(r#"{"inner":4,"_unused":0}"#.to_string()),
            Some(r#"{"value":1,"first":2,"second":3}"#.to_string()),
            Some(r#"{"total":1,"step":2}"#.to_string()),
        ]
    );
}
