#!/usr/bin/env bash
# Cold-start measurement: the first fingerprint and the first startup check in fresh
# processes, N runs (default 200), median and p95. Results go in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
cargo build -q --release -p licensing-server -p startup_check
cargo build -q --release -p licensing-core --features store --example cold_start
bin=target/release/licensing-server
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" keys generate --out "$dir/keys" >/dev/null
"$bin" machine fingerprint --product com.example.cad --json > "$dir/fp.json"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
fp = json.load(open(f"{d}/fp.json"))
claims = {"iss": "bench", "sub": "lic_bench", "aud": "com.example.cad",
          "lic": {"model": "node_locked", "features": {"core": {}},
                  "node_lock": {"fingerprints": [{"id": fp["id"], "components": fp["components"]}],
                                "match": {"required": ["machine_id"], "min_matching": 3}}}}
json.dump(claims, open(f"{d}/claims.json", "w"))
PY
"$bin" license issue --private-key "$dir/keys/private.pem" --claims "$dir/claims.json" > "$dir/token.jwt"
target/release/startup_check --public-key "$dir/keys/jwks.json" --store "$dir/store" --install "$dir/token.jwt" >/dev/null
for _ in $(seq "$runs"); do
  target/release/examples/cold_start "$dir/keys/jwks.json" "$dir/store"
  target/release/examples/cold_start fingerprint
done > "$dir/runs.jsonl"
python3 - "$dir/runs.jsonl" "$runs" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{sys.argv[2]} fresh processes per measure")
for key in ["startup_check_first_call_us", "fingerprint_first_us", "fingerprint_warm_us", "os_read_uncached_us"]:
    xs = sorted(r[key] for r in rows if key in r)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    print(f"{key:24} median {statistics.median(xs):8.1f} µs   p95 {p95:8.1f} µs   min {xs[0]:8.1f} µs")
PY
