#!/usr/bin/env bash
# What authentication costs under load: calls/s and p50/p99 latency of
#   - the public health check (the unauthenticated baseline), without and
#     with the same ~900-byte authorization header GetPrivate carries (the
#     gate ignores it there): the second isolates what the gate costs from
#     what carrying a bearer token over HTTP/2 costs,
#   - GetPrivate with one repeated token (served from the verified-token cache),
#   - GetPrivate with a distinct valid token on every call (a pool of 5000, so
#     nothing is cached: every call verifies an RS256 signature),
#   - GetPrivate with one repeated token and the cache off (--token-cache-entries 0),
# on one release server, with h2load (8 connections x 16 streams, a raw
# length-prefixed gRPC body) and with benches' own generator, which can vary
# the token per call and counts calls by their grpc-status.
#
# h2load counts a gRPC error as a success (the status travels in trailers), so
# its figures are checked against DATA bytes: an OK GetPrivate answer carries
# a message, a refusal none.
#
# The servers run with metrics on (--metrics-listen), as in production; the
# server's /metrics is checked after the runs to have counted every call.
# With ISSUERS=N (default 1) the server trusts N issuers, the token's last,
# so every cold check first compares its `iss` with the N-1 others (their URLs
# are loopback ports where nothing listens: their key sets never load).
#
# usage: benches/load.sh            (SECONDS_PER_RUN=10 by default)
#        METRICS=off benches/load.sh    servers without --metrics-listen
#        SCENARIOS=gate benches/load.sh only what the gate ratio needs: health
#                                       with the header, and a repeated token
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-10}
metrics=${METRICS:-on}
scenarios=${SCENARIOS:-all}
work=target/load
mkdir -p "$work"

if ! command -v h2load >/dev/null; then
  echo "installing h2load (Debian's nghttp2-client)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y nghttp2-client >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y nghttp2-client >/dev/null; }
fi

cargo build --release --quiet -p authgate --bin authgate
cargo build --release --quiet -p authgate-bench --bin load
load=target/release/load
authgate=target/release/authgate

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

rm -f "$work/issuer.txt"
"$load" fixture --listen 127.0.0.1:50099 --dir "$work" --tokens 5000 >"$work/fixture.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -s "$work/issuer.txt" ] && break; sleep 0.1; done
issuer=$(cat "$work/issuer.txt")
audience=$(cat "$work/audience.txt")

issuers=${ISSUERS:-1}
others=()
for i in $(seq 2 "$issuers"); do others+=(--issuer "http://127.0.0.1:$i/"); done
serve() { # port, extra flags...
  local port=$1; shift
  if [ "$metrics" = on ]; then set -- "$@" --metrics-listen "127.0.0.1:$((port - 100))"; fi
  RUST_LOG=warn "$authgate" serve --listen "127.0.0.1:$port" "${others[@]}" --issuer "$issuer" --audience "$audience" \
    --require-scope /authgate.v1.PrivateService/GetPrivate=read:private "$@" >"$work/serve-$port.log" 2>&1 &
  pids+=($!)
  "$load" wait --addr "http://127.0.0.1:$port"
}
serve 50098
server_pid=${pids[-1]}
serve 50097 --token-cache-entries 0

ok_bytes=$("$load" probe --addr http://127.0.0.1:50098 --token-file "$work/token.txt")
health_bytes=7 # HealthCheckResponse{status: SERVING}: 5-byte frame header + 2
printf '\0\0\0\0\0' >"$work/empty.bin"
token=$(cat "$work/token.txt")

declare -A rps p50 p99 ok
h2() { # name, port, path, bytes-per-ok, [token]
  local name=$1 port=$2 path=$3 per_ok=$4 tok=${5:-}
  local args=(-c 8 -m 16 -t 1 -d "$work/empty.bin" -H 'content-type: application/grpc' -H 'te: trailers')
  [ -n "$tok" ] && args+=(-H "authorization: Bearer $tok")
  # A 2 s warm-up that also sizes the measured run: a fixed request count
  # keeps the byte counts (which h2load does not split by phase) exact.
  h2load "${args[@]}" -D 2 "http://127.0.0.1:$port$path" >"$work/$name.warm"
  local rate n
  rate=$(sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p' "$work/$name.warm" | head -1)
  n=$(awk -v r="$rate" -v s="$seconds" 'BEGIN { printf "%d", r * s }')
  h2load "${args[@]}" -n "$n" --log-file "$work/$name.tsv" "http://127.0.0.1:$port$path" >"$work/$name.out"
  local done data
  rps[$name]=$(sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p' "$work/$name.out" | head -1)
  done=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$work/$name.out")
  data=$(sed -n 's/.*(\([0-9]*\)) data$/\1/p' "$work/$name.out")
  ok[$name]="$((data / per_ok))/$done"
  p50[$name]=$(cut -f3 "$work/$name.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.50)]}')
  p99[$name]=$(cut -f3 "$work/$name.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]}')
}
ours() { # name, port, path, [tokens file]
  local name=$1 port=$2 path=$3 file=${4:-}
  local args=(run --addr "127.0.0.1:$port" --path "$path" --seconds "$seconds" --warmup 2)
  [ -n "$file" ] && args+=(--tokens "$file")
  "$load" "${args[@]}" >"$work/$name.out"
  local line; line=$(grep '^RESULT' "$work/$name.out")
  rps[$name]=$(sed 's/.*calls_per_second=\([0-9]*\).*/\1/' <<<"$line")
  p50[$name]=$(sed 's/.*p50_us=\([0-9]*\).*/\1/' <<<"$line")
  p99[$name]=$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$line")
  local okn refused errors
  okn=$(sed 's/.* ok=\([0-9]*\).*/\1/' <<<"$line")
  refused=$(sed 's/.*refused=\([0-9]*\).*/\1/' <<<"$line")
  errors=$(sed 's/.*transport_errors=\([0-9]*\).*/\1/' <<<"$line")
  ok[$name]="$okn/$((okn + refused + errors))"
}

health=/grpc.health.v1.Health/Check
private=/authgate.v1.PrivateService/GetPrivate
echo "running: ${seconds}s per scenario, after a 2s warm-up; metrics $metrics; scenarios $scenarios"
all() { [ "$scenarios" = all ]; }
for name in h2_health h2_health_hdr h2_repeated h2_nocache our_health our_health_hdr our_repeated our_distinct our_nocache; do
  rps[$name]=-; p50[$name]=-; p99[$name]=-; ok[$name]=-
done
all && h2 h2_health 50098 $health $health_bytes
h2 h2_health_hdr 50098 $health $health_bytes "$token"
h2 h2_repeated 50098 $private "$ok_bytes" "$token"
all && h2 h2_nocache 50097 $private "$ok_bytes" "$token"
all && ours our_health 50098 $health
ours our_health_hdr 50098 $health "$work/token.txt"
ours our_repeated 50098 $private "$work/token.txt"
all && ours our_distinct 50098 $private "$work/tokens.txt"
all && ours our_nocache 50097 $private "$work/token.txt"
rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$server_pid/status")
if [ "$metrics" = on ]; then
  # Every call the generators made (warm-ups included) was counted.
  curl -s http://127.0.0.1:49998/metrics >"$work/metrics.txt"
  counted=$(sed -n 's/^grpc_server_handled_total{grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate",grpc_code="OK"} //p' "$work/metrics.txt")
  echo "metrics: GetPrivate calls counted OK by the server on 50098: $counted"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "authgate $("$authgate" --version | cut -d' ' -f2), trusting $issuers issuer(s), server RSS after the runs: $rss"
printf '\n%-34s %10s %9s %9s %14s %8s %8s\n' scenario "calls/s" "p50 us" "p99 us" "OK/answered" "x health" "p99 x"
row() { # label, name, baseline
  printf '%-34s %10s %9s %9s %14s %8s %8s\n' "$1" "${rps[$2]}" "${p50[$2]}" "${p99[$2]}" "${ok[$2]}" \
    "$(ratio "${rps[$2]}" "${rps[$3]}")" "$(ratio "${p99[$2]}" "${p99[$3]}")"
}
row "h2load: health (no auth)" h2_health h2_health
row "h2load: health + bearer header" h2_health_hdr h2_health
row "h2load: GetPrivate, repeated token" h2_repeated h2_health
row "h2load: GetPrivate, cache off" h2_nocache h2_health
row "ours:   health (no auth)" our_health our_health
row "ours:   health + bearer header" our_health_hdr our_health
row "ours:   GetPrivate, repeated token" our_repeated our_health
row "ours:   GetPrivate, distinct tokens" our_distinct our_health
row "ours:   GetPrivate, cache off" our_nocache our_health
echo
echo "the gate's own cost, against health carrying the same header:"
printf '  h2load repeated token: %s x calls/s, %s x p99\n' \
  "$(ratio "${rps[h2_repeated]}" "${rps[h2_health_hdr]}")" "$(ratio "${p99[h2_repeated]}" "${p99[h2_health_hdr]}")"
printf '  ours repeated token:   %s x calls/s, %s x p99\n' \
  "$(ratio "${rps[our_repeated]}" "${rps[our_health_hdr]}")" "$(ratio "${p99[our_repeated]}" "${p99[our_health_hdr]}")"
printf '  ours distinct tokens:  %s x calls/s, %s x p99\n' \
  "$(ratio "${rps[our_distinct]}" "${rps[our_health_hdr]}")" "$(ratio "${p99[our_distinct]}" "${p99[our_health_hdr]}")"
