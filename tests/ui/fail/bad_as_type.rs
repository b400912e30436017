use observe_runtime::observe;

#[observe(as_type = "llm")]
fn f() {}

fn main() {
    f();
}
