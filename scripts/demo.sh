#!/usr/bin/env bash
# The main job, walked through: generate a signing key, issue a license from a sample claims file,
# verify it offline (valid, then in its grace period, then for a feature it lacks), inspect it, and
# show that a tampered token is refused. Everything lands in ./data/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p licensing-server
bin=target/debug/licensing-server
dir=data/demo
rm -rf "$dir" && mkdir -p "$dir"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
verify() { say "$bin license verify $*"; set +e; "$bin" license verify "$@"; echo "(exit $?)"; set -e; }

run "$bin" keys generate --out "$dir/keys"
say "$bin license issue --private-key $dir/keys/private.pem --claims examples/licenses/subscription.json > $dir/subscription.jwt"
"$bin" license issue --private-key "$dir/keys/private.pem" --claims examples/licenses/subscription.json > "$dir/subscription.jwt"
cut -c1-100 "$dir/subscription.jwt"; echo "..."

verify --public-key "$dir/keys/public.pem" --product com.example.cad --token "$dir/subscription.jwt" --feature export_step
verify --public-key "$dir/keys/jwks.json" --token "$dir/subscription.jwt" --at 2099-01-05T00:00:00Z
verify --public-key "$dir/keys/public.pem" --token "$dir/subscription.jwt" --feature render

"$bin" license issue --private-key "$dir/keys/private.pem" --claims examples/licenses/perpetual.json > "$dir/perpetual.jwt"
verify --public-key "$dir/keys/public.pem" --token "$dir/perpetual.jwt" --version 2.4.0 --release-date 2026-06-01
verify --public-key "$dir/keys/public.pem" --token "$dir/perpetual.jwt" --version 3.0.0 --release-date 2031-01-01

say "$bin license inspect --token $dir/subscription.jwt   # decoded, NOT verified"
"$bin" license inspect --token "$dir/subscription.jwt" | head -20

say "tamper with one character of the payload and verify again"
python3 - "$dir/subscription.jwt" "$dir/tampered.jwt" <<'PY'
import sys
t = open(sys.argv[1]).read().strip()
h, p, s = t.split(".")
i = len(p) // 2
p = p[:i] + ("A" if p[i] != "A" else "B") + p[i + 1:]
open(sys.argv[2], "w").write(".".join([h, p, s]))
PY
verify --public-key "$dir/keys/public.pem" --token "$dir/tampered.jwt"
printf '\nDone. Files are in %s.\n' "$dir"
