use observe_runtime::observe;

#[observe(level = "info")]
fn f() {}

fn main() {
    f();
}
