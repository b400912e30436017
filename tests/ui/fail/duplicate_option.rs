use observe_runtime::observe;

#[observe(name = "first", as_type = "tool", name = "second")]
fn f() {}

fn main() {
    f();
}
