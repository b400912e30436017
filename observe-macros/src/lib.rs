//! The `#[observe]` attribute of `observe`, the Langfuse observability SDK for Rust.
//!
//! Use it through the runtime crate, `observe_runtime::observe`: the code it generates calls into
//! `observe_runtime::__private` and nothing else. This crate holds only the macro:
//!
//! - `attr.rs` parses and checks the options;
//! - `arguments.rs` says which arguments are captured, by name;
//! - `shape.rs` classifies the signature: async or not, a stream or iterator returned, a
//!   `Result`, a future built in the body;
//! - `expand.rs` generates the instrumented function.

#![forbid(unsafe_code)]

mod arguments;
mod attr;
mod expand;
mod shape;

use proc_macro::TokenStream;

/// Records every call of a function as a Langfuse observation. Use it as
/// `observe_runtime::observe`, where it is documented with an example of every option (one copy
/// of that text, compiled as doctests there: `observe-runtime/src/observe.md`).
#[proc_macro_attribute]
pub fn observe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(args.into(), item.into()).into()
}
