//! The signature's shape, read before any code is generated: how the body produces its value
//! (plain, `async fn`, a returned `async` block), what the output is (nothing, a value, a
//! `Result`), and whether it is a stream or iterator whose observation ends with its last item.
//! Only types and syntax are read here; `expand.rs` generates the code.

use syn::{
    Block, Expr, ExprAsync, ExprCall, GenericArgument, PathArguments, Stmt, Type, TypeParamBound,
};

/// How the function's body produces its value.
pub(crate) enum BodyShape<'a> {
    /// A plain function: the body runs inside `Observed::call`.
    Sync,
    /// An `async fn`: the body becomes an instrumented `async move` block.
    AsyncFn,
    /// A plain function whose tail expression is an `async` block, possibly inside a call to
    /// `Box::pin` (this is also what `#[async_trait]` generates): the block is instrumented.
    ReturnsAsyncBlock {
        /// The `Box::pin` path when the block is boxed.
        box_pin: Option<&'a Expr>,
        async_block: &'a ExprAsync,
    },
}

/// What a streamed result is: an iterator or a stream, and how it is held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum StreamKind {
    Iterator,
    Stream,
}

/// How a streamed result is held in the return type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Holder {
    /// `impl Iterator<..>` / `impl Stream<..>`.
    Bare,
    /// `Box<dyn Iterator<..>>` / `Box<dyn Stream<..> + Unpin>`.
    Boxed,
    /// `Pin<Box<dyn Stream<..>>>` (or, with `stream = true`, an alias of it).
    PinBoxed,
}

/// A return type whose observation ends with its last item.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Streamed {
    pub(crate) kind: StreamKind,
    pub(crate) holder: Holder,
    /// Inside a `Result`: an `Err` ends the observation at once.
    pub(crate) in_result: bool,
}

/// The trait bounds of a streamed result: an iterator or a stream trait, with only the auto
/// traits and lifetimes the wrappers keep (a bound such as `Clone` or `Display` the wrappers do
/// not implement, so such a type is recorded as a value).
pub(crate) fn streamed_bounds<'a>(
    bounds: impl Iterator<Item = &'a TypeParamBound>,
) -> Option<StreamKind> {
    let mut kind = None;
    for bound in bounds {
        match bound {
            TypeParamBound::Lifetime(_) => {}
            TypeParamBound::Trait(bound) => {
                if !matches!(bound.modifier, syn::TraitBoundModifier::None) {
                    return None;
                }
                let last = bound.path.segments.last()?;
                let this = match last.ident.to_string().as_str() {
                    "Iterator" | "DoubleEndedIterator" | "ExactSizeIterator" | "FusedIterator" => {
                        Some(StreamKind::Iterator)
                    }
                    "Stream" => Some(StreamKind::Stream),
                    "Send" | "Sync" | "Unpin" => None,
                    _ => return None,
                };
                match (kind, this) {
                    (_, None) => {}
                    (None, found) => kind = found,
                    (Some(seen), Some(found)) if seen == found => {}
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    kind
}

pub(crate) fn has_unpin<'a>(mut bounds: impl Iterator<Item = &'a TypeParamBound>) -> bool {
    bounds.any(|bound| {
        matches!(bound, TypeParamBound::Trait(bound)
            if bound.path.segments.last().is_some_and(|s| s.ident == "Unpin"))
    })
}

/// The single type argument of a path segment such as `Box<T>`.
pub(crate) fn only_type_argument(segment: &syn::PathSegment) -> Option<&Type> {
    let PathArguments::AngleBracketed(generics) = &segment.arguments else {
        return None;
    };
    let mut types = generics.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let first = types.next()?;
    types.next().is_none().then_some(first)
}

/// `dyn Trait` inside `Box<..>`.
pub(crate) fn boxed_trait_object(ty: &Type) -> Option<&syn::TypeTraitObject> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Box" {
        return None;
    }
    match only_type_argument(last)? {
        Type::TraitObject(object) => Some(object),
        _ => None,
    }
}

/// Whether (and how) a return type is a streamed result the attribute can wrap, as the
/// signature shows it.
pub(crate) fn streamed_type(ty: &Type) -> Option<(StreamKind, Holder)> {
    match ty {
        Type::ImplTrait(impl_trait) => {
            streamed_bounds(impl_trait.bounds.iter()).map(|kind| (kind, Holder::Bare))
        }
        Type::Paren(paren) => streamed_type(&paren.elem),
        Type::Group(group) => streamed_type(&group.elem),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if last.ident == "Pin" {
                let object = boxed_trait_object(only_type_argument(last)?)?;
                return match streamed_bounds(object.bounds.iter())? {
                    StreamKind::Stream => Some((StreamKind::Stream, Holder::PinBoxed)),
                    // `Pin<Box<dyn Iterator>>` is not an iterator.
                    StreamKind::Iterator => None,
                };
            }
            let object = boxed_trait_object(ty)?;
            match streamed_bounds(object.bounds.iter())? {
                StreamKind::Iterator => Some((StreamKind::Iterator, Holder::Boxed)),
                // `Box<S>` is a stream only when `S: Unpin`.
                StreamKind::Stream if has_unpin(object.bounds.iter()) => {
                    Some((StreamKind::Stream, Holder::Boxed))
                }
                StreamKind::Stream => None,
            }
        }
        _ => None,
    }
}

/// The `T` of `Result<T, ..>`, by the last path segment's name.
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(paren) => result_ok_type(&paren.elem),
        Type::Group(group) => result_ok_type(&group.elem),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if last.ident != "Result" {
                return None;
            }
            let PathArguments::AngleBracketed(generics) = &last.arguments else {
                return None;
            };
            match generics.args.first()? {
                GenericArgument::Type(ok) => Some(ok),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The streamed shape of a function's output (the output of an `async fn`): `stream = false`
/// turns it off; `stream = true` takes an unknown type for an alias of `Pin<Box<dyn Stream>>`.
pub(crate) fn streamed_output(ty: Option<&Type>, stream: Option<bool>) -> Option<Streamed> {
    if stream == Some(false) {
        return None;
    }
    let ty = ty?;
    let found = |ty: &Type, in_result: bool| {
        streamed_type(ty).map(|(kind, holder)| Streamed {
            kind,
            holder,
            in_result,
        })
    };
    if let Some(streamed) = found(ty, false) {
        return Some(streamed);
    }
    if let Some(ok) = result_ok_type(ty) {
        if let Some(streamed) = found(ok, true) {
            return Some(streamed);
        }
    }
    (stream == Some(true)).then(|| Streamed {
        kind: StreamKind::Stream,
        holder: Holder::PinBoxed,
        in_result: result_ok_type(ty).is_some(),
    })
}

/// What is recorded from the function's return value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OutputShape {
    /// `()`, `!` or no return type: nothing.
    Nothing,
    /// Any other type: the value.
    Value,
    /// Syntactically a `Result<..>`: `Ok(v)` records `v` (unless it is `()`), `Err(e)` records an
    /// error.
    Result { ok_is_unit: bool },
}

/// Finds `async { .. }` or `Box::pin(async { .. })` as the tail expression of the body.
pub(crate) fn returned_async_block(block: &Block) -> Option<BodyShape<'_>> {
    let tail = match block.stmts.last()? {
        Stmt::Expr(expr, None) => expr,
        _ => return None,
    };
    match tail {
        Expr::Async(async_block) => Some(BodyShape::ReturnsAsyncBlock {
            box_pin: None,
            async_block,
        }),
        Expr::Call(ExprCall { func, args, .. }) if args.len() == 1 && is_box_pin(func) => {
            match args.first() {
                Some(Expr::Async(async_block)) => Some(BodyShape::ReturnsAsyncBlock {
                    box_pin: Some(func),
                    async_block,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `Box::pin`, `std::boxed::Box::pin`, `::alloc::boxed::Box::pin`, ...
pub(crate) fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(path) = func else {
        return false;
    };
    let mut segments = path.path.segments.iter().rev();
    matches!(
        (segments.next(), segments.next()),
        (Some(pin), Some(boxed)) if pin.ident == "pin" && boxed.ident == "Box"
    )
}

/// The `T` of `impl Future<Output = T>`, `Pin<Box<dyn Future<Output = T> + Send>>` and the like.
pub(crate) fn future_output(ty: &Type) -> Option<&Type> {
    match ty {
        Type::ImplTrait(impl_trait) => future_output_of_bounds(impl_trait.bounds.iter()),
        Type::TraitObject(object) => future_output_of_bounds(object.bounds.iter()),
        Type::Paren(paren) => future_output(&paren.elem),
        Type::Group(group) => future_output(&group.elem),
        Type::Path(path) => path.path.segments.iter().find_map(|segment| {
            let PathArguments::AngleBracketed(generics) = &segment.arguments else {
                return None;
            };
            generics.args.iter().find_map(|arg| match arg {
                GenericArgument::Type(inner) => future_output(inner),
                _ => None,
            })
        }),
        _ => None,
    }
}

pub(crate) fn future_output_of_bounds<'a>(
    mut bounds: impl Iterator<Item = &'a TypeParamBound>,
) -> Option<&'a Type> {
    bounds.find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(generics) = &last.arguments else {
            return None;
        };
        generics.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

/// Whether a return type is recorded, and how.
pub(crate) fn output_shape(ty: Option<&Type>) -> OutputShape {
    let Some(ty) = ty else {
        return OutputShape::Nothing;
    };
    match ty {
        Type::Tuple(tuple) if tuple.elems.is_empty() => OutputShape::Nothing,
        Type::Never(_) => OutputShape::Nothing,
        Type::Paren(paren) => output_shape(Some(&paren.elem)),
        Type::Group(group) => output_shape(Some(&group.elem)),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return OutputShape::Value;
            };
            match &last.arguments {
                PathArguments::AngleBracketed(generics) if last.ident == "Result" => {
                    let ok_is_unit = matches!(
                        generics.args.first(),
                        Some(GenericArgument::Type(Type::Tuple(tuple))) if tuple.elems.is_empty()
                    );
                    OutputShape::Result { ok_is_unit }
                }
                _ => OutputShape::Value,
            }
        }
        _ => OutputShape::Value,
    }
}

pub(crate) fn is_never(ty: &Type) -> bool {
    match ty {
        Type::Never(_) => true,
        Type::Paren(paren) => is_never(&paren.elem),
        Type::Group(group) => is_never(&group.elem),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use quote::ToTokens as _;

    use super::*;

    fn shape_of(ty: &str) -> OutputShape {
        let ty: Type = syn::parse_str(ty).expect("a type");
        output_shape(Some(&ty))
    }

    #[test]
    fn result_types_are_recognised_by_their_last_segment() {
        let result = OutputShape::Result { ok_is_unit: false };
        assert_eq!(shape_of("Result<u8, String>"), result);
        assert_eq!(shape_of("std::io::Result<u8>"), result);
        assert_eq!(shape_of("anyhow::Result<Vec<u8>>"), result);
        assert_eq!(shape_of("(Result<u8, E>)"), result);
        assert_eq!(
            shape_of("Result<(), E>"),
            OutputShape::Result { ok_is_unit: true }
        );
        assert_eq!(shape_of("Result"), OutputShape::Value);
        assert_eq!(shape_of("MyResult<u8>"), OutputShape::Value);
        assert_eq!(shape_of("Option<Result<u8, E>>"), OutputShape::Value);
        assert_eq!(shape_of("()"), OutputShape::Nothing);
        assert_eq!(shape_of("!"), OutputShape::Nothing);
        assert_eq!(output_shape(None), OutputShape::Nothing);
    }

    #[test]
    fn streamed_results_are_found_by_their_trait_bounds() {
        let shape = |ty: &str, stream: Option<bool>| {
            let ty: Type = syn::parse_str(ty).expect("a type");
            streamed_output(Some(&ty), stream).map(|s| (s.kind, s.holder, s.in_result))
        };
        use Holder::*;
        use StreamKind::*;
        assert_eq!(
            shape("impl Iterator<Item = u8> + Send + 'a", None),
            Some((Iterator, Bare, false))
        );
        assert_eq!(
            shape(
                "impl DoubleEndedIterator<Item = u8> + ExactSizeIterator",
                None
            ),
            Some((Iterator, Bare, false))
        );
        assert_eq!(
            shape("Box<dyn std::iter::Iterator<Item = u8> + '_>", None),
            Some((Iterator, Boxed, false))
        );
        assert_eq!(
            shape("impl futures::Stream<Item = String>", None),
            Some((Stream, Bare, false))
        );
        assert_eq!(
            shape("std::pin::Pin<Box<dyn Stream<Item = u8> + Send>>", None),
            Some((Stream, PinBoxed, false))
        );
        assert_eq!(
            shape("Box<dyn Stream<Item = u8> + Unpin>", None),
            Some((Stream, Boxed, false))
        );
        assert_eq!(
            shape("anyhow::Result<impl Iterator<Item = u8>>", None),
            Some((Iterator, Bare, true))
        );
        // Not wrapped: concrete types, bounds the wrapper lacks, shapes that are not streams.
        for plain in [
            "std::str::Chars<'_>",
            "tokio::net::TcpStream",
            "impl Iterator<Item = u8> + Clone",
            "impl Iterator<Item = u8> + Stream",
            "Box<dyn Stream<Item = u8>>",
            "Pin<Box<dyn Iterator<Item = u8>>>",
            "BoxStream<'static, u8>",
            "Vec<impl Iterator<Item = u8>>",
            "impl std::fmt::Display",
        ] {
            assert_eq!(shape(plain, None), None, "{plain}");
        }
        assert_eq!(shape("impl Iterator<Item = u8>", Some(false)), None);
        assert_eq!(
            shape("BoxStream<'static, u8>", Some(true)),
            Some((Stream, PinBoxed, false))
        );
        assert_eq!(
            shape("Result<BoxStream<'static, u8>, E>", Some(true)),
            Some((Stream, PinBoxed, true))
        );
    }

    #[test]
    fn the_output_of_a_returned_future_is_found() {
        let output = |ty: &str| {
            let ty: Type = syn::parse_str(ty).expect("a type");
            future_output(&ty).map(|found| found.to_token_stream().to_string())
        };
        assert_eq!(
            output("impl Future<Output = Result<u8, E>> + Send + '_").as_deref(),
            Some("Result < u8 , E >")
        );
        assert_eq!(
            output("Pin<Box<dyn core::future::Future<Output = u8> + Send + 'async_trait>>")
                .as_deref(),
            Some("u8")
        );
        assert_eq!(output("BoxFuture<'static, u8>"), None);
        assert_eq!(output("u8"), None);
    }

    #[test]
    fn async_blocks_are_found_bare_or_boxed_as_the_tail_only() {
        let shape = |body: &str| {
            let block: Block = syn::parse_str(body).expect("a block");
            match returned_async_block(&block) {
                Some(BodyShape::ReturnsAsyncBlock { box_pin, .. }) => Some(box_pin.is_some()),
                _ => None,
            }
        };
        assert_eq!(shape("{ let a = 1; async move { a } }"), Some(false));
        assert_eq!(shape("{ Box::pin(async move { 1 }) }"), Some(true));
        assert_eq!(shape("{ std::boxed::Box::pin(async { 1 }) }"), Some(true));
        assert_eq!(shape("{ async move { 1 }; 2 }"), None);
        assert_eq!(shape("{ Box::new(async move { 1 }) }"), None);
        assert_eq!(shape("{ pin(async move { 1 }) }"), None);
    }
}
