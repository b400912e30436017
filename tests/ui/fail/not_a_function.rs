use observe_runtime::observe;

#[observe]
struct Config {
    name: String,
}

fn main() {
    let _ = Config { name: String::new() }.name;
}
