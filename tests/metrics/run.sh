#!/usr/bin/env bash
# Metrics as Prometheus reads them: `promtool check metrics` on a real scrape
# of `authgate dev` after allowed and refused calls, then the alert rules in
# deploy/prometheus checked and unit-tested alert by alert. Installs Debian's
# prometheus package (for promtool) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  echo "installing promtool (Debian's prometheus package)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update >/dev/null && $sudo apt-get install -y prometheus >/dev/null
fi

cargo build --quiet --bin authgate
authgate=target/debug/authgate
work=target/metrics-check
rm -rf "$work" && mkdir -p "$work"

"$authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 >"$work/dev.out" 2>"$work/dev.err" &
dev=$!
trap 'kill $dev 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q '^Ctrl-C' "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Ctrl-C' "$work/dev.out" || { cat "$work/dev.err"; echo "authgate dev did not start"; exit 1; }
field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
addr=$(field gRPC | cut -d' ' -f1)
metrics=$(field metrics)
token=$(sed -n '/^A token for the dev client/{n;n;p}' "$work/dev.out")

"$authgate" call --addr "http://$addr" --token "$token" >/dev/null
"$authgate" call --addr "http://$addr" --token "$token" >/dev/null
"$authgate" call --addr "http://$addr" --token not.a.token >/dev/null 2>&1 && exit 1
curl -sf "$metrics" >"$work/scrape.txt"

value() { # the value of one series, exactly as rendered
  awk -v s="$1" 'index($0, s " ") == 1 { print $2 }' "$work/scrape.txt"
}
expect() { # series, value
  local got; got=$(value "$1")
  [ "$got" = "$2" ] || { echo "FAIL: $1 is ${got:-absent}, not $2"; exit 1; }
}
expect 'authgate_auth_decisions_total{result="allowed",reason="none"}' 2
expect 'authgate_auth_decisions_total{result="denied",reason="malformed"}' 1
expect 'authgate_token_cache_hits_total' 1
expect 'grpc_server_handled_total{grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate",grpc_code="OK"}' 2
expect 'grpc_server_handled_total{grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate",grpc_code="Unauthenticated"}' 1

echo "promtool check metrics on a scrape of $(wc -l <"$work/scrape.txt") lines:"
promtool check metrics <"$work/scrape.txt"
echo "  no problems found"
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
