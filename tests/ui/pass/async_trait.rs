//! Methods under `#[async_trait]`: the boxed future is instrumented, not its allocation.
#![deny(warnings)]

use async_trait::async_trait;
use observe_runtime::observe;

#[async_trait]
trait Retriever {
    async fn retrieve(&self, query: &str, k: usize) -> Vec<String>;
    async fn check(&mut self, query: String) -> Result<(), String>;

    #[observe(name = "default-method")]
    async fn default_method(&self, query: &str) -> usize {
        self.retrieve(query, 2).await.len()
    }
}

struct Index {
    calls: u32,
}

#[async_trait]
impl Retriever for Index {
    #[observe(as_type = "retriever")]
    async fn retrieve(&self, query: &str, k: usize) -> Vec<String> {
        tokio::task::yield_now().await;
        (0..k).map(|i| format!("{query}-{i}")).collect()
    }

    #[observe(skip(self))]
    async fn check(&mut self, query: String) -> Result<(), String> {
        self.calls += 1;
        if query.is_empty() {
            return Err("empty query".to_string());
        }
        Ok(())
    }
}

#[async_trait]
trait Unsized {
    async fn describe(self: Box<Self>) -> String;
}

#[async_trait]
impl Unsized for Index {
    #[observe]
    async fn describe(self: Box<Self>) -> String {
        format!("{} calls", self.calls)
    }
}

#[tokio::main]
async fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    let mut index = Index { calls: 0 };
    assert_eq!(index.retrieve("q", 2).await, ["q-0", "q-1"]);
    assert_eq!(index.default_method("q").await, 2);
    assert_eq!(index.check("q".to_string()).await, Ok(()));
    assert!(index.check(String::new()).await.is_err());
    let dynamic: Box<dyn Retriever + Send + Sync> = Box::new(Index { calls: 0 });
    assert_eq!(dynamic.retrieve("d", 1).await, ["d-0"]);
    assert_eq!(Box::new(index).describe().await, "2 calls");

    guard.flush().unwrap();
    let names: Vec<String> = memory.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "retrieve",
            "retrieve",
            "default-method",
            "check",
            "check",
            "retrieve",
            "describe"
        ]
    );
}
