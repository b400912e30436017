use observe_runtime::observe;

#[observe]
fn f(n: u8) -> String {
    n
}

#[observe]
async fn g(n: u8) -> String {
    n
}

fn main() {
    f(1);
    let _ = g(1);
}
