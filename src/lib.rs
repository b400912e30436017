//! The workspace's root package: the examples and the integration tests. Its library only
//! compiles the README's and the guides' code blocks as doctests, so every block a user copies
//! builds (`cargo test --doc` runs them; blocks marked `no_run` are compiled only).

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/how-it-works.md")]
pub struct HowItWorksDoctests;
