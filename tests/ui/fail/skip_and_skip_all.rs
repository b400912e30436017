use observe_runtime::observe;

#[observe(skip(a), skip_all)]
fn f(a: u8) -> u8 {
    a
}

fn main() {
    f(1);
}
