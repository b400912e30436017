//! The arguments of `#[observe(...)]`: their syntax tree and how they parse.
//!
//! This module only reads and checks what the user wrote inside the parentheses. It knows nothing
//! of the function the attribute sits on (checks that need the function, such as whether a
//! `skip`ped name is one of its arguments, live in `expand.rs`), and it generates no code.

use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Error, Expr, ExprLit, Ident, Lit, LitBool, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(as_type);
    syn::custom_keyword!(capture_input);
    syn::custom_keyword!(capture_output);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(skip_all);
    syn::custom_keyword!(stream);
}

/// Every option, as shown in error messages.
const OPTIONS: &str = "`name = \"...\"`, `as_type = \"...\"`, `capture_input = true|false`, \
                       `capture_output = true|false`, `skip(arg, ...)`, `skip_all`, \
                       `stream = true|false`, `crate = path`";

/// The parsed contents of `#[observe(...)]`.
#[derive(Default)]
pub(crate) struct ObserveArgs {
    /// `name = "..."`: the observation's name (default: the function's name).
    pub(crate) name: Option<LitStr>,
    /// `as_type = "..."`: the observation type (default: span).
    pub(crate) as_type: Option<ObservationKind>,
    /// `capture_input = bool` (default: the runtime configuration decides).
    pub(crate) capture_input: Option<LitBool>,
    /// `capture_output = bool` (default: the runtime configuration decides).
    pub(crate) capture_output: Option<LitBool>,
    /// `skip(a, b)`: arguments left out of the captured input.
    pub(crate) skips: Option<Vec<Ident>>,
    /// `skip_all`: no argument is captured.
    pub(crate) skip_all: bool,
    /// `stream = bool`: `false` records a returned iterator or stream as a plain value; `true`
    /// wraps a return type the attribute cannot see through (a type alias of
    /// `Pin<Box<dyn Stream>>` such as `BoxStream`). Default: wrap what the signature shows.
    pub(crate) stream: Option<LitBool>,
    /// `crate = path`: where the runtime crate is (default `::observe_runtime`).
    pub(crate) krate: Option<Path>,
}

/// The observation types Langfuse knows, as accepted by `as_type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ObservationKind {
    Span,
    Generation,
    Event,
    Agent,
    Tool,
    Chain,
    Retriever,
    Evaluator,
    Embedding,
    Guardrail,
}

impl ObservationKind {
    const ALL: [(&'static str, ObservationKind); 10] = [
        ("span", ObservationKind::Span),
        ("generation", ObservationKind::Generation),
        ("event", ObservationKind::Event),
        ("agent", ObservationKind::Agent),
        ("tool", ObservationKind::Tool),
        ("chain", ObservationKind::Chain),
        ("retriever", ObservationKind::Retriever),
        ("evaluator", ObservationKind::Evaluator),
        ("embedding", ObservationKind::Embedding),
        ("guardrail", ObservationKind::Guardrail),
    ];

    fn from_literal(literal: &LitStr) -> syn::Result<Self> {
        let value = literal.value();
        Self::ALL
            .iter()
            .find(|(text, _)| *text == value)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let valid: Vec<String> = Self::ALL
                    .iter()
                    .map(|(text, _)| format!("\"{text}\""))
                    .collect();
                Error::new_spanned(
                    literal,
                    format!(
                        "unknown observation type \"{value}\"; `as_type` must be one of: {}",
                        valid.join(", ")
                    ),
                )
            })
    }

    /// The name of the matching `ObservationType` variant in the runtime.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            ObservationKind::Span => "Span",
            ObservationKind::Generation => "Generation",
            ObservationKind::Event => "Event",
            ObservationKind::Agent => "Agent",
            ObservationKind::Tool => "Tool",
            ObservationKind::Chain => "Chain",
            ObservationKind::Retriever => "Retriever",
            ObservationKind::Evaluator => "Evaluator",
            ObservationKind::Embedding => "Embedding",
            ObservationKind::Guardrail => "Guardrail",
        }
    }
}

impl Parse for ObserveArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ObserveArgs::default();
        while !input.is_empty() {
            if input.peek(kw::name) {
                let keyword: kw::name = input.parse()?;
                input.parse::<Token![=]>()?;
                let name = parse_string(input, "name", "name = \"retrieve-documents\"")?;
                if name.value().trim().is_empty() {
                    return Err(Error::new_spanned(
                        &name,
                        "`name` must not be empty: leave it out to use the function's name",
                    ));
                }
                set_once(&mut args.name, name, keyword.span, "name")?;
            } else if input.peek(kw::as_type) {
                let keyword: kw::as_type = input.parse()?;
                input.parse::<Token![=]>()?;
                let literal = parse_string(input, "as_type", "as_type = \"generation\"")?;
                let kind = ObservationKind::from_literal(&literal)?;
                set_once(&mut args.as_type, kind, keyword.span, "as_type")?;
            } else if input.peek(kw::capture_input) {
                let keyword: kw::capture_input = input.parse()?;
                let value = parse_bool(input, "capture_input")?;
                set_once(
                    &mut args.capture_input,
                    value,
                    keyword.span,
                    "capture_input",
                )?;
            } else if input.peek(kw::capture_output) {
                let keyword: kw::capture_output = input.parse()?;
                let value = parse_bool(input, "capture_output")?;
                set_once(
                    &mut args.capture_output,
                    value,
                    keyword.span,
                    "capture_output",
                )?;
            } else if input.peek(kw::stream) {
                let keyword: kw::stream = input.parse()?;
                let value = parse_bool(input, "stream")?;
                set_once(&mut args.stream, value, keyword.span, "stream")?;
            } else if input.peek(kw::skip_all) {
                let keyword: kw::skip_all = input.parse()?;
                if args.skip_all {
                    return Err(duplicate(keyword.span, "skip_all"));
                }
                if args.skips.is_some() {
                    return Err(Error::new(
                        keyword.span,
                        "`skip_all` and `skip(...)` cannot be combined: `skip_all` already leaves \
                         out every argument",
                    ));
                }
                args.skip_all = true;
            } else if input.peek(kw::skip) {
                let keyword: kw::skip = input.parse()?;
                if args.skip_all {
                    return Err(Error::new(
                        keyword.span,
                        "`skip(...)` and `skip_all` cannot be combined: `skip_all` already leaves \
                         out every argument",
                    ));
                }
                let names = parse_skip_list(input)?;
                set_once(&mut args.skips, names, keyword.span, "skip")?;
            } else if input.peek(Token![crate]) {
                let keyword: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let path = input.call(Path::parse_mod_style).map_err(|error| {
                    Error::new(
                        error.span(),
                        "`crate` expects a path to the runtime crate, e.g. `crate = ::observe_runtime`",
                    )
                })?;
                set_once(&mut args.krate, path, keyword.span, "crate")?;
            } else {
                return Err(unknown_option(input));
            }

            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error(format!(
                    "expected `,` between options; the options are: {OPTIONS}"
                )));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// Stores an option's value, refusing a second occurrence.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    span: proc_macro2::Span,
    option: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(duplicate(span, option));
    }
    *slot = Some(value);
    Ok(())
}

fn duplicate(span: proc_macro2::Span, option: &str) -> Error {
    Error::new(
        span,
        format!(
            "duplicate option `{option}`: each option may appear once; the options are: {OPTIONS}"
        ),
    )
}

fn unknown_option(input: ParseStream<'_>) -> Error {
    if input.peek(Ident::peek_any) {
        if let Ok(ident) = input.call(Ident::parse_any) {
            return Error::new(
                ident.span(),
                format!("unknown option `{ident}`; the options are: {OPTIONS}"),
            );
        }
    }
    input.error(format!("expected an option; the options are: {OPTIONS}"))
}

fn parse_string(input: ParseStream<'_>, option: &str, example: &str) -> syn::Result<LitStr> {
    let value: Expr = input.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(literal),
            ..
        }) => Ok(literal),
        other => Err(Error::new_spanned(
            other,
            format!("`{option}` expects a string literal, e.g. `{example}`"),
        )),
    }
}

fn parse_bool(input: ParseStream<'_>, option: &str) -> syn::Result<LitBool> {
    if !input.peek(Token![=]) {
        return Err(input.error(format!("expected `{option} = true` or `{option} = false`")));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(literal),
            ..
        }) => Ok(literal),
        other => Err(Error::new_spanned(
            other,
            format!("`{option}` expects `true` or `false`"),
        )),
    }
}

fn parse_skip_list(input: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    if !input.peek(syn::token::Paren) {
        return Err(input.error("expected a list of argument names, e.g. `skip(api_key, client)`"));
    }
    let content;
    let parens = syn::parenthesized!(content in input);
    let names: Punctuated<Ident, Token![,]> =
        content.parse_terminated(Ident::parse_any, Token![,])?;
    if names.is_empty() {
        return Err(Error::new(
            parens.span.join(),
            "`skip()` needs at least one argument name, e.g. `skip(api_key)`",
        ));
    }
    let mut seen: Vec<Ident> = Vec::with_capacity(names.len());
    for name in names {
        if seen.iter().any(|earlier| earlier.unraw() == name.unraw()) {
            return Err(Error::new(
                name.span(),
                format!("`{name}` is already in `skip(...)`"),
            ));
        }
        seen.push(name);
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> syn::Result<ObserveArgs> {
        syn::parse_str(args)
    }

    fn error(args: &str) -> String {
        match parse(args) {
            Ok(_) => panic!("`{args}` should be refused"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_option_parses() {
        let args = parse(
            r#"name = "n", as_type = "tool", capture_input = false, capture_output = true,
               skip(a, self, r#type), crate = ::my::runtime,"#,
        )
        .expect("valid options");
        assert_eq!(args.name.map(|name| name.value()).as_deref(), Some("n"));
        assert_eq!(args.as_type, Some(ObservationKind::Tool));
        assert_eq!(args.capture_input.map(|flag| flag.value), Some(false));
        assert_eq!(args.capture_output.map(|flag| flag.value), Some(true));
        let skips: Vec<String> = args
            .skips
            .unwrap_or_default()
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(skips, ["a", "self", "r#type"]);
        assert!(!args.skip_all);
        assert!(args.krate.is_some());
        assert!(parse("").is_ok());
        assert!(parse("skip_all").expect("valid").skip_all);
    }

    #[test]
    fn every_observation_type_is_accepted() {
        for (text, kind) in ObservationKind::ALL {
            let args = parse(&format!("as_type = \"{text}\"")).expect("valid type");
            assert_eq!(args.as_type, Some(kind));
        }
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(error("level = 1").starts_with("unknown option `level`; the options are:"));
        assert!(error("name = \"a\", name = \"b\"").starts_with("duplicate option `name`"));
        assert!(error("skip(a), skip(b)").starts_with("duplicate option `skip`"));
        assert!(error("as_type = \"llm\"").starts_with("unknown observation type \"llm\""));
        assert_eq!(
            error("capture_output = 1"),
            "`capture_output` expects `true` or `false`"
        );
        assert!(error("capture_input")
            .ends_with("expected `capture_input = true` or `capture_input = false`"));
        assert_eq!(error("skip(a, a)"), "`a` is already in `skip(...)`");
        assert!(error("skip()").starts_with("`skip()` needs at least one argument name"));
        assert!(error("name = \"  \"").starts_with("`name` must not be empty"));
        assert!(
            error("name = \"a\" as_type = \"tool\"").starts_with("expected `,` between options")
        );
        assert!(
            error("skip_all, skip(a)").starts_with("`skip(...)` and `skip_all` cannot be combined")
        );
    }
}
