use observe_runtime::observe;

#[observe(capture_input = "no")]
fn f(secret: &str) -> usize {
    secret.len()
}

fn main() {
    f("s");
}
