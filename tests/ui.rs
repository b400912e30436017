//! Compile-time behaviour of `#[observe]`: every supported function shape compiles (and runs),
//! every misuse is refused with an error pointing at the offending token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
