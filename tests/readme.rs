//! The README as a new user reads it: the first screen, links that resolve, no code block left
//! out of compilation (the blocks themselves are compiled as doctests by `src/lib.rs`), and a
//! configuration table that lists every variable the SDK reads.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn readme() -> String {
    read("README.md")
}

#[test]
fn the_first_screen_is_sentence_install_program_commands() {
    let readme = readme();
    let first_screen = &readme[..readme
        .find("## Two commands")
        .expect("a Two commands section")];
    let order = [
        "# observe: Langfuse observability for Rust",
        "Put `#[observe]` on your functions",
        "cargo add observe-runtime\n",
        "cargo add observe-runtime --features tracing,http",
        "```rust",
        "fn main()",
        "let _guard = observe_runtime::init()?;",
    ];
    let mut from = 0;
    for text in order {
        let at = first_screen[from..]
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} is not on the first screen after byte {from}"));
        from += at + text.len();
    }
    assert!(
        first_screen.lines().count() <= 45,
        "the first screen has {} lines",
        first_screen.lines().count()
    );
    let commands = &readme[readme.find("## Two commands").unwrap()..];
    let commands = &commands[..commands[3..].find("\n## ").unwrap()];
    assert!(commands.contains("cargo run --example quickstart"));
    assert!(commands.contains("cargo test --workspace"));
}

#[test]
fn no_code_block_is_left_out_of_compilation() {
    for path in ["README.md", "docs/how-it-works.md"] {
        let text = read(path);
        for (number, line) in text.lines().enumerate() {
            if let Some(info) = line.strip_prefix("```rust") {
                assert!(
                    info.is_empty() || info == ",no_run",
                    "{path}:{}: a Rust block marked {info:?} is not compiled",
                    number + 1
                );
            }
        }
    }
}

#[test]
fn relative_links_resolve() {
    let readme = readme();
    let mut checked = 0;
    for part in readme.split("](").skip(1) {
        let target = &part[..part.find(')').unwrap()];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let file = target.split('#').next().unwrap();
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(file).exists(),
            "the README links to {target}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} relative links");
}

#[test]
fn the_configuration_table_lists_every_variable_read() {
    let readme = readme();
    let table = &readme[readme.find("## Configuration").unwrap()..];
    let table = &table[..table[3..].find("\n## ").unwrap()];
    let source = read("observe-runtime/src/config/env.rs");
    let mut variables: Vec<&str> = ["\"LANGFUSE_", "\"OTEL_"]
        .iter()
        .flat_map(|prefix| source.match_indices(prefix))
        .map(|(at, _)| {
            let name = &source[at + 1..];
            &name[..name.find('"').unwrap()]
        })
        .filter(|name| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect();
    variables.extend(["TRACEPARENT", "BAGGAGE"]);
    variables.sort_unstable();
    variables.dedup();
    assert!(variables.len() >= 25, "{variables:?}");
    let missing: Vec<&&str> = variables
        .iter()
        .filter(|name| !table.contains(&format!("| `{name}` |")))
        .collect();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
}
