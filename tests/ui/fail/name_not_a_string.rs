use observe_runtime::observe;

#[observe(name = retrieve)]
fn f() {}

fn main() {
    f();
}
