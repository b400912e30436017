//! The arguments an observation records: which are captured (`skip`, `skip_all`) and the
//! names a pattern argument binds.

use syn::ext::IdentExt as _;
use syn::{Error, FnArg, Ident, Pat, Signature};

/// The names a function's arguments bind, in order.
pub(crate) struct Arguments {
    /// Identifiers bound by the typed arguments, including those inside patterns such as
    /// `(a, b): (u8, u8)` or `Point { x, y }: Point`.
    pub(crate) bindings: Vec<Ident>,
    /// Whether the function takes `self` in any form.
    pub(crate) has_receiver: bool,
}

impl Arguments {
    pub(crate) fn of(sig: &Signature) -> Self {
        let mut bindings = Vec::new();
        let mut has_receiver = false;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(_) => has_receiver = true,
                FnArg::Typed(typed) => collect_bindings(&typed.pat, &mut bindings),
            }
        }
        Arguments {
            bindings,
            has_receiver,
        }
    }

    /// Every name in `skip(..)` must be an argument (`self` is accepted for methods, though it is
    /// never captured anyway).
    pub(crate) fn check_skips(&self, skips: &[Ident]) -> syn::Result<()> {
        for skip in skips {
            let name = skip.unraw();
            if name == "self" && self.has_receiver {
                continue;
            }
            if self.bindings.iter().any(|binding| binding.unraw() == name) {
                continue;
            }
            let known: Vec<String> = self
                .bindings
                .iter()
                .map(|binding| format!("`{}`", binding.unraw()))
                .collect();
            let message = if known.is_empty() {
                format!("cannot skip `{name}`: this function has no argument to capture")
            } else {
                format!(
                    "cannot skip `{name}`: this function has no argument of that name; its \
                     arguments are {}",
                    known.join(", ")
                )
            };
            return Err(Error::new(skip.span(), message));
        }
        Ok(())
    }
}

pub(crate) fn collect_bindings(pat: &Pat, bindings: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(binding) => bindings.push(binding.ident.clone()),
        Pat::Reference(reference) => collect_bindings(&reference.pat, bindings),
        Pat::Paren(paren) => collect_bindings(&paren.pat, bindings),
        Pat::Tuple(tuple) => tuple
            .elems
            .iter()
            .for_each(|elem| collect_bindings(elem, bindings)),
        Pat::TupleStruct(tuple) => tuple
            .elems
            .iter()
            .for_each(|elem| collect_bindings(elem, bindings)),
        Pat::Slice(slice) => slice
            .elems
            .iter()
            .for_each(|elem| collect_bindings(elem, bindings)),
        Pat::Struct(structure) => structure
            .fields
            .iter()
            .for_each(|field| collect_bindings(&field.pat, bindings)),
        Pat::Type(typed) => collect_bindings(&typed.pat, bindings),
        // `_`, `..` and anything refutable bind nothing we can name; the compiler reports
        // patterns that are not allowed in arguments.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use syn::ItemFn;

    use super::*;

    #[test]
    fn pattern_arguments_bind_their_identifiers() {
        let function: ItemFn = syn::parse_str(
            "fn f(&self, (a, mut b): (u8, u8), Point { x, y: _ }: Point, \
             Wrapper(inner): Wrapper, [first, ..]: [u8; 3], _: u8, r#type: u8) {}",
        )
        .expect("a function");
        let names: Vec<String> = Arguments::of(&function.sig)
            .bindings
            .iter()
            .map(|binding| binding.unraw().to_string())
            .collect();
        assert_eq!(names, ["a", "b", "x", "inner", "first", "type"]);
    }
}
