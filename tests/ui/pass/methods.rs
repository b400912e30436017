//! Methods and associated functions, including impl blocks of generic types.
#![deny(warnings)]

use observe_runtime::observe;

#[derive(Debug, Clone)]
struct Counter {
    count: u32,
    log: Vec<String>,
}

impl Counter {
    #[observe]
    fn new(start: u32) -> Self {
        Counter {
            count: start,
            log: Vec::new(),
        }
    }

    #[observe]
    fn get(&self) -> u32 {
        self.count
    }

    #[observe]
    fn name(&self) -> &str {
        "counter"
    }

    #[observe]
    fn bump(&mut self, by: u32) {
        self.count += by;
        self.log.push(format!("+{by}"));
    }

    /// Hands out a borrow of a field of `&mut self`.
    #[observe]
    fn log_mut(&mut self) -> &mut Vec<String> {
        &mut self.log
    }

    #[observe]
    fn into_count(self) -> u32 {
        self.count
    }

    #[observe]
    fn boxed(self: Box<Self>) -> u32 {
        self.count * 10
    }

    #[observe]
    pub fn associated(left: u32, right: u32) -> u32 {
        left.max(right)
    }
}

struct Holder<T> {
    value: T,
}

impl<T: Clone + std::fmt::Debug> Holder<T> {
    #[observe]
    fn new(value: T) -> Self {
        Holder { value }
    }

    #[observe]
    fn value(&self) -> T {
        self.value.clone()
    }

    #[observe]
    fn replace<U: Into<T>>(&mut self, value: U) -> T {
        std::mem::replace(&mut self.value, value.into())
    }
}

trait Describe {
    fn describe(&self) -> String;

    #[observe]
    fn shout(&self) -> String {
        self.describe().to_uppercase()
    }
}

impl Describe for Counter {
    #[observe]
    fn describe(&self) -> String {
        format!("count {}", self.count)
    }
}

fn main() {
    let memory = observe_runtime::MemoryExporter::new();
    let guard = observe_runtime::Config::default()
        .exporter(observe_runtime::Exporter::Memory(memory.clone()))
        .init()
        .unwrap();

    let mut counter = Counter::new(1);
    counter.bump(2);
    assert_eq!(counter.get(), 3);
    assert_eq!(counter.name(), "counter");
    counter.log_mut().push("manual".to_string());
    assert_eq!(counter.log, ["+2", "manual"]);
    assert_eq!(counter.shout(), "COUNT 3");
    assert_eq!(Box::new(counter.clone()).boxed(), 30);
    assert_eq!(counter.into_count(), 3);
    assert_eq!(Counter::associated(4, 9), 9);

    let mut holder = Holder::new(String::from("a"));
    assert_eq!(holder.value(), "a");
    assert_eq!(holder.replace("b"), "a");
    assert_eq!(holder.value(), "b");

    guard.flush().unwrap();
    assert_eq!(memory.spans().len(), 14);
}
