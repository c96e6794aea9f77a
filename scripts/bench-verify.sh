#!/usr/bin/env bash
# The interleaved pass of licensing-core/benches/verify.rs in N fresh processes (default 10),
# then, per case of group `verify`, the median of the N per-process median ratios to the floor,
# with the lowest and highest. One process is not enough: with address-space randomisation
# each process lays out heap and stack differently, and on this kind of VM whole-process
# ratios moved by up to ±0.15x between processes while the rounds inside one process agreed.
# criterion itself is skipped (the filter matches no case). Results go in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
processes=${1:-10}
cargo bench -q -p licensing-core --bench verify --locked --no-run
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$processes"); do
  cargo bench -q -p licensing-core --bench verify --locked -- no_criterion_case 2>/dev/null \
    | awk -v run="$i" '/^interleaved verify_parts/ {exit} /^interleaved verify / {on=1; next} on && NF >= 3 {sub(/x$/, "", $2); print run, $1, $2}'
done > "$out"
python3 - "$out" "$processes" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
cases = list(dict.fromkeys(name for _, name, _ in rows))
runs = len(set(run for run, _, _ in rows))
if runs != int(sys.argv[2]):
    sys.exit(f"expected {sys.argv[2]} processes, parsed {runs}")
print(f"ratio to floor_warm over {runs} processes: median of per-process medians (min - max)")
for case in cases:
    xs = [float(r) for _, name, r in rows if name == case]
    print(f"  {case:28} {statistics.median(xs):6.3f}x   ({min(xs):.3f} - {max(xs):.3f})")
PY
