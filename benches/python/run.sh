#!/usr/bin/env bash
# Times the Langfuse Python SDK's @observe the way benches/pipeline.rs times observe: traces of a
# root with 100 children, time per span, against a local server that discards (started here).
# Not part of CI; needs python3 with venv and the PyPI registry.
#
#   benches/python/run.sh [SECONDS_PER_CASE]      (default 10)
#
# VENV=dir chooses the venv (default benches/python/.venv), LANGFUSE_REQUIREMENT the package
# (default "langfuse", for example "langfuse==3.2.1"), PYTHON the interpreter that makes the venv.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-10}"
venv="${VENV:-$here/.venv}"

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${LANGFUSE_REQUIREMENT:-langfuse}"

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$venv/bin/python" "$here/bench_observe.py" serve "$work/port" &
server=$!
for _ in $(seq 100); do
    [ -s "$work/port" ] && break
    sleep 0.1
done
port="$(cat "$work/port")"

for case in disabled enabled_bursty sustained capture; do
    "$venv/bin/python" "$here/bench_observe.py" run "$case" --port "$port" --seconds "$seconds"
done
