//! Generic functions with bounds and `where` clauses, lifetimes, `impl Trait` arguments and
//! return types.
#![deny(warnings)]

use std::fmt::{Debug, Display};

use observe_runtime::observe;

#[observe]
fn largest<T: PartialOrd + Copy + Debug>(items: &[T]) -> Option<T> {
    let mut best = *items.first()?;
    for &item in items {
        if item > best {
            best = item;
        }
    }
    Some(best)
}

#[observe]
fn joined<I>(items: I, separator: &str) -> String
where
    I: IntoIterator,
    I::Item: Display,
{
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}

#[observe]
fn longest<'a, 'b: 'a>(left: &'a str, right: &'b str) -> &'a str {
    if left.len() >= right.len() {
        left
    } else {
        right
    }
}

#[observe]
fn describe(value: impl Display, mut callback: impl FnMut(&str)) -> usize {
    let text = value.to_string();
    callback(&text);
    text.len()
}

#[observe]
fn evens(limit: u32) -> impl Iterator<Item = u32> + Clone {
    (0..limit).filter(|n| n % 2 == 0)
}

#[observe]
fn boxed_display(n: u8) -> Box<dyn Display> {
    Box::new(n)
}

#[observe]
fn pair_of_iterators(n: u8) -> (impl Iterator<Item = u8>, Vec<impl Display>) {
    (0..n, vec![n])
}

#[observe]
fn const_generic<const N: usize>(values: [u8; N]) -> usize {
    values.len()
}

fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest::<u8>(&[]), None);
    assert_eq!(joined([1, 2, 3], "-"), "1-2-3");
    assert_eq!(longest("long", "no"), "long");
    let mut seen = String::new();
    assert_eq!(describe(42, |text| seen.push_str(text)), 2);
    assert_eq!(seen, "42");
    assert_eq!(evens(7).collect::<Vec<_>>(), [0, 2, 4, 6]);
    assert_eq!(boxed_display(7).to_string(), "7");
    let (iterator, displays) = pair_of_iterators(3);
    assert_eq!(iterator.count(), 3);
    assert_eq!(displays[0].to_string(), "3");
    assert_eq!(const_generic([1, 2, 3]), 3);

    guard.flush().unwrap();
    assert_eq!(memory.spans().len(), 9);
}
