use observe_runtime::observe;

#[observe]
const fn f(n: u8) -> u8 {
    n + 1
}

fn main() {
    f(1);
}
