use observe_runtime::observe;

#[observe(skip(query, api_kee))]
fn f(query: &str, api_key: &str) -> usize {
    query.len() + api_key.len()
}

fn main() {
    f("q", "k");
}
