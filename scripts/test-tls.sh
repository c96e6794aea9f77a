#!/usr/bin/env bash
# TLS with real peers (issue 25): `licensing-server serve --tls-cert --tls-key` on 127.0.0.1 with
# a certificate made here by openssl, then checked by OpenSSL's own client (`openssl s_client`:
# the handshake verifies against that certificate, ALPN http/1.1) and by curl (`--cacert`:
# /healthz answers over HTTPS, plain HTTP on the same port gets no answer). Then the files are
# replaced and a new connection must see the new certificate. Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in openssl curl timeout; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
cargo build -q --locked -p licensing-server
bin=${CARGO_TARGET_DIR:-target}/debug/licensing-server
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "test-tls: $*" >&2; cat "$work/server.log" >&2; exit 1; }

cert() { # cert() NAME: a self-signed certificate for 127.0.0.1 and localhost
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$work/$1.key" -out "$work/$1.pem" 2>/dev/null
}
cert first
cert second
cp "$work/first.pem" "$work/cert.pem"
cp "$work/first.key" "$work/key.pem"

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/server.out")
case "$url" in https://*) ;; *) fail "no https listener: '$url'" ;; esac
hostport=${url#https://}

# OpenSSL's client: verifies the chain against the certificate, and is offered http/1.1.
s_client() {
  echo | timeout 20 openssl s_client -connect "$hostport" -servername localhost \
    -verify_return_error -CAfile "$work/$1.pem" -alpn http/1.1 2>&1
}
out=$(s_client first) || fail "openssl s_client failed: $out"
grep -q 'Verify return code: 0 (ok)' <<<"$out" || fail "s_client did not verify: $out"
grep -q 'ALPN protocol: http/1.1' <<<"$out" || fail "no ALPN http/1.1: $out"
grep -q 'subject=CN *= *first' <<<"$out" || fail "not the first certificate: $out"

# curl: HTTPS answers; plain HTTP on the TLS port does not.
[ "$(curl -sS --max-time 20 --cacert "$work/first.pem" "$url/healthz")" != "" ] ||
  fail "no answer over HTTPS"
if curl -sS --max-time 20 "http://$hostport/healthz" >/dev/null 2>&1; then
  fail "plain HTTP was answered on the TLS port"
fi

# Reload: replace the files; within the bound a new connection presents the second certificate.
cp "$work/second.key" "$work/key.new" && mv "$work/key.new" "$work/key.pem"
cp "$work/second.pem" "$work/cert.new" && mv "$work/cert.new" "$work/cert.pem"
for _ in $(seq 150); do
  curl -sS --max-time 5 --cacert "$work/second.pem" "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sS --max-time 20 --cacert "$work/second.pem" "$url/healthz" >/dev/null ||
  fail "the new certificate was not served after the files changed"
out=$(s_client second) || fail "openssl s_client failed after the reload: $out"
grep -q 'subject=CN *= *second' <<<"$out" || fail "not the second certificate: $out"
echo "test-tls: ok (openssl s_client and curl over TLS, reload seen)"
