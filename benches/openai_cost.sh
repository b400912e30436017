#!/usr/bin/env bash
# Instructions the async-openai layer adds to the calling thread, counted by valgrind (repeatable
# to within a few dozen when nothing else runs, unlike its time):
# the paired benchmark's client without the layer (`ONLY=plain`) and with it (`ONLY=observed`),
# counted inside the benchmark's `call` (or `stream`) future only, with 6 rounds minus 3 rounds
# (so that connecting and warming up cancel out), per call (or per streamed chunk).
# Usage: benches/openai_cost.sh [call|stream]...
# Needs valgrind (`apt-get install valgrind`). BENCHMARKS.md, "Sixth round", has the method.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/valgrind.sh openai
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(call)
for case in "${cases[@]}"; do
  # Calls per round (two blocks), and what one is divided into.
  case $case in
    call) per_round=800 unit=1 what=call ;;
    stream) per_round=40 unit=500 what=chunk ;;
    *) echo "unknown case: $case (call or stream)" >&2; exit 2 ;;
  esac
  for client in plain observed; do
    for rounds in 3 6; do
      CASE=$case ONLY=$client ROUNDS=$rounds valgrind --tool=callgrind --separate-threads=yes \
        --toggle-collect="openai::$case::{{closure}}" \
        --callgrind-out-file="$out/$client.$rounds" "$bin" --bench nomatch >/dev/null 2>&1
    done
  done
  # The main thread's file ends in -01.
  awk -v what="$what" -v n=$((3 * per_round * unit)) '
    /^summary:/ { split(FILENAME, part, "/"); name = part[length(part)]; ir[name] = $2 }
    END {
      plain = (ir["plain.6-01"] - ir["plain.3-01"]) / n
      observed = (ir["observed.6-01"] - ir["observed.3-01"]) / n
      printf "per %s: without the layer %.0f instructions, with it %.0f: the layer adds %.0f (%.1f %%)\n",
        what, plain, observed, observed - plain, (observed - plain) / plain * 100
    }' "$out"/plain.3-01 "$out"/plain.6-01 "$out"/observed.3-01 "$out"/observed.6-01
done
