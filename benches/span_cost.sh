#!/usr/bin/env bash
# Instructions, data reads and data writes one span costs the calling thread, counted by
# valgrind (no noise): the calling thread's counts with 4,000 roots minus those with 2,000,
# divided by the spans between them (202,000; 22,000 for the small cases' roots of 11 spans).
# Usage: benches/span_cost.sh [observe|fastrace|floor|capture|observe-small|fastrace-small]...
# Needs valgrind (`apt-get install valgrind`). BENCHMARKS.md, "Eighth round", has the method.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/valgrind.sh span_cost
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(observe fastrace)
for case in "${cases[@]}"; do
  spans=202000
  [[ $case == *-small ]] && spans=22000
  for roots in 2000 4000; do
    # Counted inside the roots only: the flushes between them wait for other threads, and how
    # long they wait varies from run to run.
    valgrind --tool=callgrind --cache-sim=yes --separate-threads=yes \
      --toggle-collect="span_cost::burst" \
      --callgrind-out-file="$out/$case.$roots" "$bin" "$case" "$roots" 1 >/dev/null 2>&1
  done
  # The main thread's file ends in -01; its `summary:` line follows the `events:` line's order.
  awk -v case="$case" -v spans="$spans" '
    /^events:/ { for (i = 2; i <= NF; i++) name[i] = $i }
    /^summary:/ { for (i = 2; i <= NF; i++) { if (FILENAME ~ /4000/) b[i] = $i; else a[i] = $i } n = NF }
    END {
      printf "%s per span:", case
      for (i = 2; i <= n; i++) if (name[i] == "Ir" || name[i] == "Dr" || name[i] == "Dw")
        printf " %s %.1f", name[i], (b[i] - a[i]) / spans
      printf "\n"
    }' "$out/$case.2000-01" "$out/$case.4000-01"
done
