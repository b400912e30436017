//! `async fn` (free, methods, in traits) and functions returning an `async` block, bare or
//! `Box::pin`ned.
#![deny(warnings)]

use std::future::Future;
use std::pin::Pin;

use observe_runtime::observe;

#[observe]
async fn double(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n * 2
}

#[observe]
async fn fallible(text: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.parse()?;
    if n == 0 {
        return Ok(100);
    }
    Ok(double(n).await)
}

#[observe]
async fn no_return_type(label: String) {
    let _ = label;
}

#[observe]
async fn borrowed<'a>(text: &'a str, _other: &str) -> &'a str {
    text.trim()
}

#[observe]
async fn returns_impl_trait(n: u8) -> impl std::fmt::Display {
    n + 1
}

#[observe]
fn returns_async_block(n: u32) -> impl Future<Output = u32> {
    let doubled = n * 2;
    async move { doubled + 1 }
}

#[observe]
fn returns_boxed_block(n: u32) -> Pin<Box<dyn Future<Output = Result<u32, String>> + Send>> {
    Box::pin(async move {
        if n > 10 {
            return Err(format!("{n} is too large"));
        }
        Ok(n)
    })
}

struct Service {
    base: u32,
}

impl Service {
    #[observe]
    async fn add(&self, n: u32) -> u32 {
        self.base + n
    }

    #[observe]
    async fn set(&mut self, base: u32) {
        self.base = base;
    }

    #[observe]
    async fn consume(self) -> u32 {
        self.base
    }

    #[observe]
    fn later(&self, n: u32) -> impl Future<Output = u32> + '_ {
        async move { self.base * n }
    }
}

trait Tool {
    async fn run(&self, input: String) -> String;

    #[observe]
    async fn run_twice(&self, input: String) -> String {
        let once = self.run(input).await;
        self.run(once).await
    }
}

impl Tool for Service {
    #[observe(as_type = "tool")]
    async fn run(&self, input: String) -> String {
        format!("{input}+{}", self.base)
    }
}

struct Generic<T> {
    value: T,
}

impl<T: Clone + Send + Sync> Generic<T> {
    #[observe]
    async fn value(&self) -> T {
        self.value.clone()
    }
}

fn assert_send<F: Future + Send>(future: F) -> F {
    future
}

#[tokio::main]
async fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    assert_eq!(assert_send(double(2)).await, 4);
    assert_eq!(fallible("3").await, Ok(6));
    assert!(fallible("x").await.is_err());
    no_return_type("label".to_string()).await;
    assert_eq!(borrowed("  padded ", "").await, "padded");
    assert_eq!(returns_impl_trait(1).await.to_string(), "2");
    assert_eq!(returns_async_block(2).await, 5);
    assert_eq!(returns_boxed_block(3).await, Ok(3));
    assert!(returns_boxed_block(30).await.is_err());

    let mut service = Service { base: 1 };
    assert_eq!(assert_send(service.add(2)).await, 3);
    service.set(5).await;
    assert_eq!(service.later(2).await, 10);
    assert_eq!(service.run_twice("x".to_string()).await, "x+5+5");
    assert_eq!(service.consume().await, 5);
    assert_eq!(Generic { value: 7 }.value().await, 7);

    guard.flush().unwrap();
    // `fallible("3")` also calls `double`; `run_twice` calls `run` twice.
    assert_eq!(memory.spans().len(), 18);
}
