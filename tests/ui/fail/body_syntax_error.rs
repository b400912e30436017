use observe_runtime::observe;

#[observe]
fn f(n: u8) -> u8 {
    let doubled = n * 2
    doubled
}

fn main() {
    f(1);
}
