#!/usr/bin/env bash
# What a gRPC call costs through a proxy, side by side in one run, all on
# loopback, against the same upstream (proxybench upstream: a minimal h2c
# tonic server answering GetPrivate without authentication), with the same
# RS256 key and tokens:
#   1. direct to the upstream;
#   2. nginx (Debian 12's 1.22) grpc_pass, no authentication;
#   3. HAProxy (Debian 12's 2.6) with jwt_verify: RS256 signature, and iss,
#      aud and exp checked by http-request deny rules;
#   4. authgate proxy (skipped, with a message, while the binary has no
#      `proxy` subcommand).
# Scenarios: benches' load generator (benches/src/loadgen.rs, 8 connections
# x 16 streams, one thread; it counts calls by the grpc-status they ended
# with) with one repeated token and with a distinct token per call (a pool
# of 5000), and h2load (same shape) with the repeated token. Each row and
# scenario runs ROUNDS times (3), the rows interleaved within each round;
# the report gives medians, throughput as a ratio of direct, and p99 latency
# added over direct. Then memory per idle connection: IDLE_CONNECTIONS
# (1000) HTTP/2 connections opened through each proxy, one call on each,
# then held idle; the proxy's resident memory (VmRSS, all its processes)
# before and after, divided by the count.
#
# The key pair is made with openssl; tokens and the JWKS by proxybench mint;
# the JWKS is served over loopback HTTP by python3's http.server.
#
# A benchmark, not a test: never run in CI. Installs what it needs from
# Debian (nginx-light, haproxy, nghttp2-client) when missing.
#
# usage: benches/proxy.sh              (SECONDS_PER_RUN=5, ROUNDS=3)
#        AUTHGATE=/path/to/authgate benches/proxy.sh   another build (row 4)
#        H2LOAD=off benches/proxy.sh   only benches' generator
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-5}
warmup=${WARMUP_SECONDS:-1}
rounds=${ROUNDS:-3}
idle_n=${IDLE_CONNECTIONS:-1000}
use_h2load=${H2LOAD:-on}
target=${CARGO_TARGET_DIR:-target}
work=$PWD/target/proxybench
rm -rf "$work" && mkdir -p "$work/nginx"

# Ports, all on 127.0.0.1.
up_port=50300 nginx_port=50301 haproxy_port=50302 authgate_port=50303 jwks_port=50304
issuer="http://127.0.0.1:$jwks_port/"
audience="https://api.bench.example"

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update >/dev/null
  $sudo apt-get install -y "${missing[@]}" >/dev/null
fi

cargo build --release --quiet -p authgate-bench --bin load --bin proxybench
load=$target/release/load
bench=$target/release/proxybench
if [ -z "${AUTHGATE:-}" ]; then
  cargo build --release --quiet -p authgate --bin authgate
  AUTHGATE=$target/release/authgate
fi
have_proxy=no
if "$AUTHGATE" proxy --help >/dev/null 2>&1; then have_proxy=yes; fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
# Enough descriptors for the idle connections, on both sides of each proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

# The key, the tokens, the JWKS.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/key.pem" -outform DER -out "$work/key.der"
openssl pkey -in "$work/key.pem" -pubout -out "$work/public.pem"
"$bench" mint --key "$work/key.der" --issuer "$issuer" --audience "$audience" --tokens 5000 --dir "$work"
(cd "$work" && exec python3 -m http.server --bind 127.0.0.1 "$jwks_port") >"$work/jwks-http.log" 2>&1 &
pids+=($!)

"$bench" upstream --listen "127.0.0.1:$up_port" >"$work/upstream.log" 2>&1 &
up_pid=$!; pids+=($up_pid)

# nginx: as its operators would run it for gRPC, with upstream keepalive
# and no limit on calls per client connection (the default, 1000, ends the
# connection). nginx sends one call at a time on an upstream connection, so
# each worker keeps as many idle ones as there are calls in flight (128):
# with 64 it reached 0.25x direct here, opening and closing connections.
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile 16384;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream grpc_upstream {
        server 127.0.0.1:$up_port;
        keepalive ${NGINX_KEEPALIVE:-256};
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$nginx_port http2;
        location / {
            grpc_pass grpc://grpc_upstream;
        }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx.conf" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
nginx_pid=$!; pids+=($nginx_pid)

# HAProxy: the signature with jwt_verify and the public key's PEM; alg, iss,
# aud and exp with deny rules, as HAProxy's own JWT guide writes them.
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 8000
    tune.bufsize 32768
    log stderr format short local0 warning
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5m
    timeout server 5m
frontend grpc
    bind 127.0.0.1:$haproxy_port proto h2
    http-request deny deny_status 401 unless { req.hdr(authorization) -m found }
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('\$.iss')
    http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('\$.aud')
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
    http-request deny deny_status 401 unless { var(txn.iss) -m str "$issuer" }
    http-request deny deny_status 401 unless { var(txn.aud) -m str "$audience" }
    http-request deny deny_status 401 unless { var(txn.exp) -m found }
    http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$work/public.pem") -m int 1 }
    default_backend upstream
backend upstream
    server up 127.0.0.1:$up_port proto h2
EOF
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!; pids+=($haproxy_pid)

rows=(direct nginx haproxy)
declare -A port=([direct]=$up_port [nginx]=$nginx_port [haproxy]=$haproxy_port [authgate]=$authgate_port)
declare -A label=([direct]="direct to the upstream" [nginx]="nginx 1.22 grpc_pass (no auth)"
  [haproxy]="HAProxy 2.6 + jwt_verify" [authgate]="authgate proxy")
declare -A procs=([direct]=$up_pid [haproxy]=$haproxy_pid)
if [ "$have_proxy" = yes ]; then
  RUST_LOG=warn "$AUTHGATE" proxy --listen "127.0.0.1:$authgate_port" --upstream "http://127.0.0.1:$up_port" \
    --issuer "$issuer" --audience "$audience" --jwks-url "http://127.0.0.1:$jwks_port/jwks.json" \
    >"$work/authgate.log" 2>&1 &
  procs[authgate]=$!; pids+=($!)
  rows+=(authgate)
else
  echo "authgate proxy: not measured: $AUTHGATE has no \`proxy\` subcommand yet (\`authgate proxy --help\` fails)"
fi

# Up when a call with a valid token answers OK (HAProxy refuses health
# without a token).
for row in "${rows[@]}"; do
  for i in $(seq 300); do
    "$bench" call --addr "http://127.0.0.1:${port[$row]}" --token-file "$work/token.txt" >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { echo "$row does not answer GetPrivate OK after 30 s"; tail "$work"/*.log; exit 1; }
    sleep 0.1
  done
done
procs[nginx]="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"

# Each gate lets a valid token through and refuses the others; the
# unauthenticated rows let everything through.
echo "sanity: one call per token kind, through each row"
for row in "${rows[@]}"; do
  line="  $row:"
  for kind in token expired wrong-audience wrong-issuer bad-signature none; do
    file=(--token-file "$work/$kind.txt"); [ "$kind" = none ] && file=()
    code=$("$bench" call --addr "http://127.0.0.1:${port[$row]}" "${file[@]}" 2>/dev/null || true)
    line+=" $kind=$code"
    want=Ok
    case $row:$kind in direct:* | nginx:* | *:token) ;; *) want=refused ;; esac
    if [ "$want" = Ok ] && [ "$code" != Ok ]; then echo "$line"; echo "FAIL: $row answered $code for $kind"; exit 1; fi
    if [ "$want" = refused ] && [ "$code" = Ok ]; then echo "$line"; echo "FAIL: $row let $kind through"; exit 1; fi
  done
  echo "$line"
done

rss_kb() { local sum=0 pid; for pid in "$@"; do sum=$((sum + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status"))); done; echo "$sum"; }
declare -A idle_kib
echo "memory: $idle_n idle HTTP/2 connections through each row"
for row in "${rows[@]}"; do
  # shellcheck disable=SC2086
  before=$(rss_kb ${procs[$row]})
  rm -f "$work/idle.fifo"; mkfifo "$work/idle.fifo"
  "$bench" idle --addr "127.0.0.1:${port[$row]}" --connections "$idle_n" --token-file "$work/token.txt" \
    <"$work/idle.fifo" >"$work/idle-$row.out" 2>&1 &
  idle_pid=$!
  exec 3>"$work/idle.fifo"
  for _ in $(seq 600); do grep -q READY "$work/idle-$row.out" && break; kill -0 $idle_pid 2>/dev/null || break; sleep 0.1; done
  sleep 1
  # shellcheck disable=SC2086
  after=$(rss_kb ${procs[$row]})
  exec 3>&-
  wait $idle_pid || { cat "$work/idle-$row.out"; echo "FAIL: idle connections through $row"; exit 1; }
  idle_kib[$row]=$(awk -v a="$after" -v b="$before" -v n="$idle_n" 'BEGIN { printf "%.1f", (a - b) / n }')
  echo "  $row: $(head -1 "$work/idle-$row.out"); RSS $before -> $after KiB: ${idle_kib[$row]} KiB per connection"
  sleep 1
done

results=$work/results.tsv
printf 'round\trow\tscenario\tcalls_per_s\tp50_us\tp99_us\tok\tcalls\n' >"$results"
ours() { # round, row, scenario, tokens file
  local out=$work/run-$2-$3-$1.out
  "$load" run --addr "127.0.0.1:${port[$2]}" --tokens "$4" --seconds "$seconds" --warmup "$warmup" >"$out"
  sed -n 's/^RESULT calls_per_second=\([0-9]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) ok=\([0-9]*\) refused=\([0-9]*\) transport_errors=\([0-9]*\)/\1 \2 \3 \4 \5 \6/p' "$out" |
    { read -r rps p50 p99 ok refused errors
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rps" "$p50" "$p99" "$ok" "$((ok + refused + errors))" >>"$results"; }
}
h2() { # round, row
  local out=$work/h2load-$2-$1
  h2load -c 8 -m 16 -t 1 -D "$seconds" --warm-up-time "$warmup" -d "$work/empty.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $(cat "$work/token.txt")" \
    --log-file "$out.tsv" "http://127.0.0.1:${port[$2]}/authgate.v1.PrivateService/GetPrivate" >"$out.out"
  local rps p50 p99 ok done
  rps=$(sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p' "$out.out" | head -1)
  done=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out.out")
  ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out.out")
  p50=$(cut -f3 "$out.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.50)]}')
  p99=$(cut -f3 "$out.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]}')
  printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\n' "$1" "$2" h2load_repeated "$rps" "$p50" "$p99" "$ok" "$done" >>"$results"
}
printf '\0\0\0\0\0' >"$work/empty.bin"

echo "load: $rounds rounds, rows interleaved; ${seconds}s per run after ${warmup}s of warm-up"
for round in $(seq "$rounds"); do
  for row in "${rows[@]}"; do
    ours "$round" "$row" repeated "$work/token.txt"
    ours "$round" "$row" distinct "$work/tokens.txt"
    [ "$use_h2load" = on ] && h2 "$round" "$row"
  done
  echo "  round $round done"
done

for row in "${rows[@]}"; do printf '%s\t%s\n' "$row" "${idle_kib[$row]}"; done >"$work/idle.tsv"
python3 benches/proxy_summary.py "$results" "$work/idle.tsv" "$have_proxy"
echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(h2load --version | head -1), authgate $("$AUTHGATE" --version | cut -d' ' -f2)$( [ "$have_proxy" = yes ] || echo ' (no proxy subcommand)')"
