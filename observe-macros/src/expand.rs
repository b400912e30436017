//! Code generation: turns an annotated function into the same function wrapped in an observation.
//!
//! Three body shapes are generated (the exact expansion is in `expansion.md` beside this file):
//!
//! - a synchronous function: the body runs in a closure handed to `__private::run_observed`,
//!   which opens, runs and ends the observation in one frame (a function returning `!` hands
//!   it to `Observed::call`);
//! - an `async fn`: the body becomes an `async move` block run through `__private::instrument`;
//! - a synchronous function whose tail expression is an `async` block, bare or in `Box::pin(..)`
//!   (hand-written future-returning functions and `#[async_trait]` methods): that block is
//!   instrumented, not the function that allocates it.
//!
//! The signature is re-emitted unchanged. Generated code names only `<crate>::__private::..` and
//! `::core::..`, and its local variables use mixed-site hygiene so they can neither clash with nor
//! be seen by the user's code. This module never panics: every problem is a `syn::Error` pointing
//! at the offending token.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned as _;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, Error, Expr, ExprAsync, Ident, ItemFn, LitStr, ReturnType, Signature, Token,
    Type, Visibility,
};

use crate::arguments::Arguments;
use crate::attr::{ObservationKind, ObserveArgs};
use crate::shape::{
    future_output, is_never, output_shape, returned_async_block, streamed_output, BodyShape,
    Holder, OutputShape, StreamKind, Streamed,
};

/// Expands `#[observe(args)]` on `item`.
///
/// When the item does not parse as a function because its body has a syntax error, the item is
/// given back unchanged so that the compiler reports the user's own error, not one of ours.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => return not_a_function_with_body(item),
    };
    match syn::parse2::<ObserveArgs>(args).and_then(|args| observe_function(args, function)) {
        Ok(tokens) => tokens,
        Err(error) => with_error(error, item),
    }
}

/// The error, followed by the item as the user wrote it (so that its callers still compile and
/// only the real problem is reported).
fn with_error(error: Error, item: TokenStream) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// A function signature without a body, as in a trait: `fn name(..) -> T;`.
struct BodylessFunction {
    semicolon: Token![;],
}

impl Parse for BodylessFunction {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        input.parse::<Signature>()?;
        Ok(BodylessFunction {
            semicolon: input.parse()?,
        })
    }
}

fn not_a_function_with_body(item: TokenStream) -> TokenStream {
    if let Ok(bodyless) = syn::parse2::<BodylessFunction>(item.clone()) {
        let error = Error::new_spanned(
            bodyless.semicolon,
            "`#[observe]` needs a function body: put it on the trait method's implementation, \
             or on a default body",
        );
        return with_error(error, item);
    }
    if syn::parse2::<syn::Item>(item.clone()).is_ok() {
        let error = Error::new(
            Span::call_site(),
            "`#[observe]` can only be applied to functions and methods",
        );
        return with_error(error, item);
    }
    // The body (or the signature) has a syntax error: give the item back untouched, so the
    // compiler reports the user's own error and nothing from this macro.
    item
}

fn observe_function(args: ObserveArgs, function: ItemFn) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;

    if let Some(constness) = &sig.constness {
        return Err(Error::new_spanned(
            constness,
            "`#[observe]` cannot be applied to a `const fn`: an observation starts and ends at \
             run time; remove `const`, or observe the non-const functions that call it",
        ));
    }

    let krate: syn::Path = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::observe_runtime));
    let arguments = Arguments::of(&sig);
    arguments.check_skips(args.skips.as_deref().unwrap_or_default())?;

    let (outer_attrs, inner_attrs): (Vec<Attribute>, Vec<Attribute>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, syn::AttrStyle::Outer));

    let captured: Vec<&Ident> = if args.skip_all || is_false(&args.capture_input) {
        Vec::new()
    } else {
        let skips = args.skips.as_deref().unwrap_or_default();
        arguments
            .bindings
            .iter()
            .filter(|binding| !skips.iter().any(|skip| skip.unraw() == binding.unraw()))
            .collect()
    };

    let generator = Generator {
        krate: &krate,
        args: &args,
        sig: &sig,
    };

    let shape = if sig.asyncness.is_some() {
        BodyShape::AsyncFn
    } else {
        returned_async_block(&block).unwrap_or(BodyShape::Sync)
    };

    let stream = args.stream.as_ref().map(syn::LitBool::value);
    let streamed = streamed_output(generator.signature_output(), stream);
    if let (Some(literal), None, true) = (&args.stream, streamed, stream == Some(true)) {
        return Err(Error::new_spanned(
            literal,
            "`stream = true` needs a return type: a stream (an alias of `Pin<Box<dyn Stream>>`, \
             such as `BoxStream`), or a `Result` of one",
        ));
    }
    let body = match (shape, streamed) {
        (BodyShape::Sync, Some(streamed)) => {
            generator.streamed_sync_body(&block, &captured, streamed)
        }
        (BodyShape::AsyncFn, Some(streamed)) => {
            generator.streamed_async_fn_body(&block, &captured, streamed)
        }
        (BodyShape::Sync, None) => generator.sync_body(&block, &captured),
        (BodyShape::AsyncFn, None) => generator.async_fn_body(&block, &captured),
        (
            BodyShape::ReturnsAsyncBlock {
                box_pin,
                async_block,
            },
            _,
        ) => generator.async_block_body(&block, box_pin, async_block, &captured),
    };

    Ok(quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #body
        }
    })
}

fn is_false(flag: &Option<syn::LitBool>) -> bool {
    matches!(flag, Some(literal) if !literal.value)
}

/// Replaces every `impl Trait` with `_`, so that a return type can be restated in a `let`.
struct ImplTraitEraser;

impl VisitMut for ImplTraitEraser {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: Token![_](impl_trait.span()),
            });
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

fn erase_impl_trait(ty: &Type) -> Type {
    let mut ty = ty.clone();
    ImplTraitEraser.visit_type_mut(&mut ty);
    ty
}

/// `if false { let x: T = loop {}; return x; }`, spanned at the return type: it fixes the type
/// of the block it starts (so `?` and `.into()` infer as in the original function) and puts type
/// errors on the user's signature.
fn fake_return_edge(return_type: &Type, span: Span) -> TokenStream {
    let return_type = erase_impl_trait(return_type);
    quote_spanned! {span=>
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::never_loop,
            clippy::unreachable
        )]
        if false {
            let __observe_fake_return: #return_type = loop {};
            return __observe_fake_return;
        }
    }
}

/// Lints that generated capture code may trip in a user crate built with `-D warnings`.
fn allow_generated_lints() -> TokenStream {
    quote! {
        #[allow(
            unused_imports,
            clippy::needless_borrow,
            clippy::needless_borrows_for_generic_args,
            clippy::borrow_deref_ref,
            clippy::ref_option_ref,
            clippy::unit_arg
        )]
    }
}

/// Generates the pieces shared by every body shape.
struct Generator<'a> {
    krate: &'a syn::Path,
    args: &'a ObserveArgs,
    sig: &'a Signature,
}

impl Generator<'_> {
    /// The `static` describing the function, `start(..)` and the input capture.
    ///
    /// Defines the local `__observe: Option<Observed>` (mixed-site hygiene).
    fn prologue(&self, captured: &[&Ident], mutable: bool) -> TokenStream {
        let krate = self.krate;
        let meta = self.meta();
        let mutability = (mutable || !captured.is_empty()).then(|| quote!(mut));
        let input_capture = self.input_capture(
            captured,
            quote_spanned!(Span::mixed_site()=> &mut __observe),
        );
        quote_spanned! {Span::mixed_site()=>
            #meta
            let #mutability __observe = #krate::__private::start(&__OBSERVE_META);
            #input_capture
        }
    }

    /// The `static __OBSERVE_META` describing the function.
    fn meta(&self) -> TokenStream {
        let krate = self.krate;
        let name = match &self.args.name {
            Some(name) => name.clone(),
            None => LitStr::new(&self.sig.ident.unraw().to_string(), self.sig.ident.span()),
        };
        let kind = Ident::new(
            self.args.as_type.unwrap_or(ObservationKind::Span).variant(),
            Span::call_site(),
        );
        let capture_input = optional_bool(&self.args.capture_input);
        let capture_output = optional_bool(&self.args.capture_output);
        quote_spanned! {Span::mixed_site()=>
            static __OBSERVE_META: #krate::__private::FnMeta = #krate::__private::FnMeta {
                name: #name,
                kind: #krate::__private::ObservationType::#kind,
                capture_input: #capture_input,
                capture_output: #capture_output,
            };
        }
    }

    /// The capture of the arguments `captured` into the observation `observed` (an
    /// `Option<&mut Observed>`, or a `&mut Option<Observed>`), when it is there.
    fn input_capture(&self, captured: &[&Ident], observed: TokenStream) -> TokenStream {
        let krate = self.krate;
        let mixed = Span::mixed_site();
        if captured.is_empty() {
            TokenStream::new()
        } else {
            let records = captured.iter().enumerate().map(|(index, binding)| {
                // An identifier never needs escaping in JSON: the key, quoted, with the brace or
                // comma before it and the colon after it, is one piece of text made here, once.
                let before = if index == 0 { '{' } else { ',' };
                let key = LitStr::new(&format!("{before}\"{}\":", binding.unraw()), binding.span());
                self.capture_into(
                    quote!(&#binding),
                    quote_spanned!(mixed=> __observe_input.arg(#key)),
                )
            });
            let allow = allow_generated_lints();
            quote_spanned! {mixed=>
                #allow
                if let ::core::option::Option::Some(__observe_observed) = #observed {
                    // Out of line: see `capture_input`.
                    #krate::__private::capture_input(__observe_observed, |__observe_input| {
                        #(#records)*
                    });
                }
            }
        }
    }

    /// Writes the value behind `reference` as JSON into `out` (a `&mut JsonOut`), picked by
    /// autoref specialization: a number, boolean or character directly, else `Serialize`, else
    /// `Debug`, else a placeholder.
    fn capture_into(&self, reference: TokenStream, out: TokenStream) -> TokenStream {
        let krate = self.krate;
        quote_spanned! {Span::mixed_site()=>
            {
                #[allow(unused_imports)]
                use #krate::__private::{
                    ViaDebug as _, ViaPlaceholder as _, ViaScalar as _, ViaSerialize as _,
                };
                (&&&&#krate::__private::Wrap(#reference)).__observe_write(#out);
            }
        }
    }

    /// Text of the error behind `reference`: `Display`, else `Debug`, else a placeholder.
    fn capture_error(&self, reference: TokenStream) -> TokenStream {
        let krate = self.krate;
        quote_spanned! {Span::mixed_site()=>
            {
                #[allow(unused_imports)]
                use #krate::__private::{
                    ErrViaDebug as _, ErrViaDisplay as _, ErrViaPlaceholder as _,
                };
                (&&&#krate::__private::ErrWrap(#reference)).__observe_error(__observe_limit)
            }
        }
    }

    /// Records `__observe_ret` into `__observe` (if there is an observation).
    fn epilogue(&self, shape: OutputShape) -> TokenStream {
        let mixed = Span::mixed_site();
        let capture_output = !is_false(&self.args.capture_output);
        let allow = allow_generated_lints();
        match shape {
            OutputShape::Nothing => TokenStream::new(),
            OutputShape::Value if !capture_output => TokenStream::new(),
            OutputShape::Value => {
                let write = self.capture_into(
                    quote_spanned!(mixed=> &__observe_ret),
                    quote_spanned!(mixed=> __observe_output.out()),
                );
                quote_spanned! {mixed=>
                    #allow
                    if let ::core::option::Option::Some(__observe_observed) = &mut __observe {
                        if let ::core::option::Option::Some(mut __observe_output) =
                            __observe_observed.output_writer()
                        {
                            #write
                        }
                    }
                }
            }
            OutputShape::Result { ok_is_unit } => {
                let on_ok = if capture_output && !ok_is_unit {
                    let write = self.capture_into(
                        quote_spanned!(mixed=> __observe_value),
                        quote_spanned!(mixed=> __observe_output.out()),
                    );
                    quote_spanned! {mixed=>
                        ::core::result::Result::Ok(__observe_value) => {
                            if let ::core::option::Option::Some(mut __observe_output) =
                                __observe_observed.output_writer()
                            {
                                #write
                            }
                        }
                    }
                } else {
                    quote_spanned!(mixed=> ::core::result::Result::Ok(_) => {})
                };
                let message = self.capture_error(quote_spanned!(mixed=> __observe_error));
                quote_spanned! {mixed=>
                    #allow
                    if let ::core::option::Option::Some(__observe_observed) = &mut __observe {
                        match &__observe_ret {
                            #on_ok
                            ::core::result::Result::Err(__observe_error) => {
                                let __observe_limit = __observe_observed.field_limit();
                                __observe_observed.record_error(#message);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The fake return edge for the function's own return type.
    fn signature_return_edge(&self) -> TokenStream {
        match &self.sig.output {
            // `!` cannot be written as a `let` type on stable Rust.
            ReturnType::Type(_, ty) if is_never(ty) => TokenStream::new(),
            ReturnType::Type(_, ty) => fake_return_edge(ty, ty.span()),
            ReturnType::Default => fake_return_edge(&syn::parse_quote!(()), self.sig.ident.span()),
        }
    }

    fn signature_output(&self) -> Option<&Type> {
        match &self.sig.output {
            ReturnType::Type(_, ty) => Some(ty),
            ReturnType::Default => None,
        }
    }

    /// A plain function: the body runs in a `move` closure. When tracing is on, the closure and
    /// the recording of its result go to `__private::run_observed`, out of line, which opens the
    /// observation, hands it to the closure (which captures the arguments first), records the
    /// result and ends it, in one frame; when it is off, the closure is called with `None` and the
    /// function is a load, a branch and the body.
    fn sync_body(&self, block: &Block, captured: &[&Ident]) -> TokenStream {
        if self.signature_output().is_some_and(is_never) {
            return self.never_body(block, captured);
        }
        let krate = self.krate;
        let meta = self.meta();
        let input_capture =
            self.input_capture(captured, quote_spanned!(Span::mixed_site()=> __observe_in));
        let fake_return = self.signature_return_edge();
        let epilogue = self.epilogue(output_shape(self.signature_output()));
        let statements = &block.stmts;
        quote_spanned! {Span::mixed_site()=>
            // Passing the closure straight to a function taking `FnOnce` makes it `FnOnce`, so
            // the body may hand out borrows of what it captured (`&mut self.field`).
            #[inline(always)]
            fn __observe_once<
                R,
                F: ::core::ops::FnOnce(
                    ::core::option::Option<&mut #krate::__private::Observed>,
                ) -> R,
            >(
                body: F,
            ) -> F {
                body
            }
            #meta
            let __observe_body = __observe_once(
                move |__observe_in: ::core::option::Option<&mut #krate::__private::Observed>| {
                    #input_capture
                    #fake_return
                    #(#statements)*
                },
            );
            if #krate::__private::enabled() {
                #krate::__private::run_observed(
                    &__OBSERVE_META,
                    __observe_body,
                    #[allow(unused_variables, unused_mut)]
                    |__observe_ret, mut __observe| {
                        #epilogue
                    },
                )
            } else {
                __observe_body(::core::option::Option::None)
            }
        }
    }

    /// A plain function returning `!`: it ends with the call itself, so there is nothing after
    /// it to run; the observation ends as the thread unwinds or the process exits.
    fn never_body(&self, block: &Block, captured: &[&Ident]) -> TokenStream {
        let prologue = self.prologue(captured, true);
        let statements = &block.stmts;
        quote_spanned! {Span::mixed_site()=>
            #[inline(always)]
            fn __observe_once<R, F: ::core::ops::FnOnce() -> R>(body: F) -> F {
                body
            }
            #prologue
            let __observe_body = __observe_once(move || {
                #(#statements)*
            });
            match &mut __observe {
                ::core::option::Option::Some(__observe_observed) => {
                    __observe_observed.call(__observe_body)
                }
                ::core::option::Option::None => __observe_body(),
            }
        }
    }

    /// `__observe_value` (the streamed result) wrapped so that the observation `__observe` ends
    /// with its last item.
    fn wrap_streamed(&self, streamed: Streamed) -> TokenStream {
        let krate = self.krate;
        let mixed = Span::mixed_site();
        let record = quote_spanned! {mixed=>
            |__observe_item, __observe_recorder| {
                #[allow(unused_imports)]
                use #krate::__private::{
                    ItemViaDebug as _, ItemViaPlaceholder as _, ItemViaResult as _,
                    ItemViaResultDebug as _, ItemViaResultSerialize as _, ItemViaSerialize as _,
                };
                (&&&&&&#krate::__private::ItemWrap(__observe_item))
                    .__observe_item(__observe_recorder)
            }
        };
        let wrap = match streamed.kind {
            StreamKind::Iterator => quote_spanned! {mixed=>
                #krate::__private::observe_iter(__observe, __observe_value, #record)
            },
            StreamKind::Stream => quote_spanned! {mixed=>
                #krate::__private::observe_stream(__observe, __observe_value, #record)
            },
        };
        match streamed.holder {
            Holder::Bare => wrap,
            Holder::Boxed => quote_spanned!(mixed=> ::std::boxed::Box::new(#wrap)),
            Holder::PinBoxed => quote_spanned!(mixed=> ::std::boxed::Box::pin(#wrap)),
        }
    }

    /// The function's value from `__observe_ret` and `__observe`: the streamed result wrapped;
    /// for a `Result`, an `Err` recorded and the observation ended at once.
    fn streamed_tail(&self, streamed: Streamed) -> TokenStream {
        let mixed = Span::mixed_site();
        let wrap = self.wrap_streamed(streamed);
        if !streamed.in_result {
            return quote_spanned! {mixed=>
                let __observe_value = __observe_ret;
                #wrap
            };
        }
        let message = self.capture_error(quote_spanned!(mixed=> &__observe_error));
        let allow = allow_generated_lints();
        quote_spanned! {mixed=>
            match __observe_ret {
                ::core::result::Result::Ok(__observe_value) => {
                    ::core::result::Result::Ok(#wrap)
                }
                ::core::result::Result::Err(__observe_error) => {
                    #allow
                    if let ::core::option::Option::Some(__observe_observed) = &mut __observe {
                        let __observe_limit = __observe_observed.field_limit();
                        __observe_observed.record_error(#message);
                    }
                    ::core::mem::drop(__observe);
                    ::core::result::Result::Err(__observe_error)
                }
            }
        }
    }

    /// A plain function returning a streamed result: the body runs under the observation, which
    /// is then handed to the wrapper of the result.
    fn streamed_sync_body(
        &self,
        block: &Block,
        captured: &[&Ident],
        streamed: Streamed,
    ) -> TokenStream {
        let krate = self.krate;
        let prologue = self.prologue(captured, true);
        let fake_return = self.signature_return_edge();
        let tail = self.streamed_tail(streamed);
        let statements = &block.stmts;
        quote_spanned! {Span::mixed_site()=>
            #[inline(always)]
            fn __observe_once<R, F: ::core::ops::FnOnce() -> R>(body: F) -> F {
                body
            }
            #prologue
            let __observe_body = __observe_once(move || {
                #fake_return
                #(#statements)*
            });
            #[allow(unused_mut)]
            let (__observe_ret, mut __observe) =
                #krate::__private::run_keeping(__observe, __observe_body);
            #tail
        }
    }

    /// An `async fn` whose output is a streamed result: as [`Self::async_fn_body`], the output
    /// wrapped.
    fn streamed_async_fn_body(
        &self,
        block: &Block,
        captured: &[&Ident],
        streamed: Streamed,
    ) -> TokenStream {
        let krate = self.krate;
        let prologue = self.prologue(captured, false);
        let fake_return = self.signature_return_edge();
        let tail = self.streamed_tail(streamed);
        let statements = &block.stmts;
        quote_spanned! {Span::mixed_site()=>
            #prologue
            let __observe_future = async move {
                #fake_return
                #(#statements)*
            };
            #[allow(unused_mut)]
            let (__observe_ret, mut __observe) =
                #krate::__private::instrument(__observe, __observe_future).await;
            #tail
        }
    }

    /// An `async fn`: the observation starts at the first poll, the body is an `async move` block
    /// run through `instrument`.
    fn async_fn_body(&self, block: &Block, captured: &[&Ident]) -> TokenStream {
        let krate = self.krate;
        let prologue = self.prologue(captured, false);
        let fake_return = self.signature_return_edge();
        let shape = output_shape(self.signature_output());
        let epilogue = self.epilogue(shape);
        let mutability = (shape != OutputShape::Nothing).then(|| quote!(mut));
        let statements = &block.stmts;
        quote_spanned! {Span::mixed_site()=>
            #prologue
            let __observe_future = async move {
                #fake_return
                #(#statements)*
            };
            let (__observe_ret, #mutability __observe) =
                #krate::__private::instrument(__observe, __observe_future).await;
            #epilogue
            __observe_ret
        }
    }

    /// A function returning an `async` block (bare or `Box::pin`ned): the observation starts
    /// when the function is called (inputs are captured then, before any statement of the body
    /// can move them) and the block is instrumented.
    fn async_block_body(
        &self,
        block: &Block,
        box_pin: Option<&Expr>,
        async_block: &ExprAsync,
        captured: &[&Ident],
    ) -> TokenStream {
        let krate = self.krate;
        let prologue = self.prologue(captured, false);
        let output = self.signature_output().and_then(future_output);
        let fake_return = output
            .map(|ty| fake_return_edge(ty, ty.span()))
            .unwrap_or_default();
        let shape = match output {
            Some(ty) => output_shape(Some(ty)),
            None => OutputShape::Value,
        };
        let epilogue = self.epilogue(shape);
        let mutability = (shape != OutputShape::Nothing).then(|| quote!(mut));

        let ExprAsync {
            attrs,
            async_token,
            capture,
            block: inner_block,
        } = async_block;
        let inner_statements = &inner_block.stmts;
        let statements_before = &block.stmts[..block.stmts.len().saturating_sub(1)];
        // The block is wrapped where it was written, at call time, so that a future dropped
        // before its first poll is recorded as cancelled too.
        let wrapped = quote_spanned! {Span::mixed_site()=>
            async move {
                let (__observe_ret, #mutability __observe) = __observe_future.await;
                #epilogue
                __observe_ret
            }
        };
        let tail = match box_pin {
            Some(box_pin) => quote!(#box_pin(#wrapped)),
            None => wrapped,
        };
        let statements_before = statements_before.iter().map(ToTokens::to_token_stream);
        quote_spanned! {Span::mixed_site()=>
            #prologue
            #(#statements_before)*
            let __observe_future = #krate::__private::instrument(
                __observe,
                #(#attrs)* #async_token #capture {
                    #fake_return
                    #(#inner_statements)*
                },
            );
            #tail
        }
    }
}

fn optional_bool(flag: &Option<syn::LitBool>) -> TokenStream {
    match flag {
        Some(literal) => quote!(::core::option::Option::Some(#literal)),
        None => quote!(::core::option::Option::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impl_trait_is_erased_wherever_it_is_nested() {
        let ty: Type = syn::parse_str("(impl Iterator<Item = u8>, Vec<impl Display>)").unwrap();
        assert_eq!(
            erase_impl_trait(&ty).to_token_stream().to_string(),
            "(_ , Vec < _ >)"
        );
    }
}
