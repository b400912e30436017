use observe_runtime::observe;

trait Tool {
    #[observe]
    fn run(&self, input: &str) -> String;
}

fn main() {}
