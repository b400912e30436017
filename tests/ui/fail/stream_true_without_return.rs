use observe_runtime::observe;

#[observe(stream = true)]
fn nothing() {}

fn main() {}
