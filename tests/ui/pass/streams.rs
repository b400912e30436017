//! Streamed results: iterators and streams in every shape the attribute wraps, with borrowed
//! items, lifetimes, generics, methods, extra auto-trait bounds, and the shapes it leaves alone.
#![deny(warnings)]

use std::pin::Pin;

use futures::stream::{self, BoxStream, Stream, StreamExt};
use observe_runtime::observe;

#[observe]
fn words<'a>(text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.split(' ')
}

#[observe]
fn elided<'a>(text: &'a str, _other: &str) -> impl Iterator<Item = char> + 'a {
    text.chars()
}

#[observe]
fn double_ended(n: u8) -> impl DoubleEndedIterator<Item = u8> + ExactSizeIterator + Send + Sync {
    0..n
}

#[observe]
fn generic<T: Clone + std::fmt::Debug + Send>(item: T, n: usize) -> impl Iterator<Item = T> {
    std::iter::repeat_n(item, n)
}

#[observe]
fn boxed<'a>(items: &'a [u8]) -> Box<dyn Iterator<Item = &'a u8> + 'a> {
    Box::new(items.iter())
}

#[observe]
fn fallible(ok: bool) -> Result<impl Iterator<Item = Result<u8, String>>, String> {
    if ok {
        Ok(vec![Ok(1), Err("bad".to_string())].into_iter())
    } else {
        Err("no".into())
    }
}

/// `Clone` is not kept by the wrapper: the value is recorded as is.
#[observe]
fn cloneable() -> impl Iterator<Item = u8> + Clone {
    0..3
}

struct Index {
    entries: Vec<String>,
}

impl Index {
    #[observe]
    fn entries(&self) -> impl Iterator<Item = &String> + '_ {
        self.entries.iter()
    }

    #[observe(as_type = "retriever")]
    async fn search(&self, prefix: String) -> impl Stream<Item = String> + '_ {
        stream::iter(self.entries.iter().filter(move |e| e.starts_with(&prefix)).cloned())
    }
}

#[observe(as_type = "generation")]
fn tokens(text: String) -> Pin<Box<dyn Stream<Item = String> + Send>> {
    Box::pin(stream::iter(text.split(' ').map(str::to_string).collect::<Vec<_>>()))
}

#[observe]
fn unpin_boxed() -> Box<dyn Stream<Item = u8> + Unpin + Send> {
    Box::new(stream::iter(0..2))
}

#[observe(stream = true)]
async fn aliased(n: u8) -> Result<BoxStream<'static, u8>, std::io::Error> {
    Ok(stream::iter(0..n).boxed())
}

fn main() {
    assert_eq!(words("a b").count(), 2);
    assert_eq!(elided("ab", "c").count(), 2);
    assert_eq!(double_ended(3).rev().len(), 3);
    assert_eq!(generic("x", 2).count(), 2);
    assert_eq!(boxed(&[1, 2]).count(), 2);
    assert_eq!(fallible(true).map(Iterator::count), Ok(2));
    assert_eq!(cloneable().clone().count(), 3);
    let index = Index {
        entries: vec!["ab".into(), "b".into()],
    };
    assert_eq!(index.entries().count(), 2);
    futures::executor::block_on(async {
        assert_eq!(index.search("a".into()).await.count().await, 1);
        assert_eq!(tokens("a b".into()).count().await, 2);
        assert_eq!(unpin_boxed().count().await, 2);
        assert_eq!(aliased(2).await.unwrap().count().await, 2);
    });
}
