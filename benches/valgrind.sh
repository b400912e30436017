# Sourced by the scripts that count a benchmark's instructions under valgrind
# (`span_cost.sh`, `openai_cost.sh`): run from the repository's root, the benchmark binary
# named $1 is built and its path put in `bin`; `out` is a scratch directory removed at exit.
set -euo pipefail
bin=$(cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
  sed -n "s/.*\"executable\":\"\([^\"]*$1[^\"]*\)\".*/\1/p" | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
