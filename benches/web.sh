#!/usr/bin/env bash
# What the one port's web faces cost, side by side in one run, all on
# loopback, against one `authgate dev` (release build) and one token:
#   1. GetPrivate over gRPC-Web versus native gRPC, on the same port, with
#      the same repeated token and the same load shape (h2load, 8 connections
#      x 16 streams, one thread, an empty GetPrivateRequest: the 5-byte frame
#      00 00 00 00 00):
#        - gRPC, h2c (`content-type: application/grpc`, `te: trailers`);
#        - gRPC-Web over HTTP/2 (`application/grpc-web+proto`, `x-grpc-web: 1`);
#        - gRPC-Web over HTTP/1.1 (h2load --h1), an extra row: H1_CONNECTIONS
#          connections, one call at a time on each (no pipelining, as
#          browsers do);
#      goal: gRPC-Web over HTTP/2 at 0.8x gRPC or more.
#   2. The blog post's route, `GET /` with `Authorization: Bearer <token>`,
#      over HTTP/1.1 with the same H1_CONNECTIONS connections (h2load --h1):
#        - on authgate;
#        - on the seed app the project grew out of (tests/peers/seed_app_jwt.py:
#          FastAPI, HTTPBearer, a new PyJWKClient and jwt.decode on every
#          request, on uvicorn), pointed at the same dev issuer, so it
#          fetches `{issuer}.well-known/jwks.json` from it on every request,
#          as the post's code does;
#      goal: authgate at 30x the seed or more.
# Each row runs ROUNDS times (3), the rows interleaved within each round (every
# other round in reverse order, so that the rows compared run side by side), for
# SECONDS_PER_RUN (10) after WARMUP_SECONDS (1); the table gives medians and
# ratios, in markdown.
#
# Every row is checked to have succeeded, not just answered: a gRPC refusal is
# HTTP 200 with grpc-status in the trailers (gRPC-Web: in the headers or the
# body's trailer frame), which h2load counts as a success. So before the runs
# one curl per shape must get grpc-status 0 and "This is private" (the seed's
# JSON for GET /, and 401 for a malformed token from both). Each run is a
# timed warm-up that sizes a fixed-count measured run (h2load -n, so that no
# call is cut off at its end); around each, authgate's Prometheus metrics are
# read: a measured run must add exactly as many OK GetPrivate calls (gRPC
# rows) or gate passes (`GET /`) as h2load sent, all answered 2xx, and no
# refusal (authgate_auth_decisions_total) nor gRPC call of any other code
# (grpc_server_handled_total); a warm-up may add no more non-OK calls than it
# cut off in flight. Any miss stops the script, loudly.
#
# The dev token lasts TOKEN_TTL (12h, `authgate dev --token-ttl`), checked to
# outlast the run; it is never printed, and reaches curl through a header
# file (h2load can only take it in argv). Children are killed on exit.
#
# A benchmark, not a test: never run in CI. Installs what it needs from
# Debian (nghttp2-client for h2load) when missing, and the seed's venv with
# tests/peers/install.sh.
#
# usage: benches/web.sh                       (SECONDS_PER_RUN=10, ROUNDS=3)
#        SECONDS_PER_RUN=3 benches/web.sh     a quick pass
#        AUTHGATE=/path/to/authgate benches/web.sh   another build
#        H1_CONNECTIONS=16 benches/web.sh     HTTP/1.1 rows' connections (32)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-10}
warmup=${WARMUP_SECONDS:-1}
rounds=${ROUNDS:-3}
h1_conns=${H1_CONNECTIONS:-32}
ttl=${TOKEN_TTL:-12h}
target=${CARGO_TARGET_DIR:-target}
work=$PWD/target/webbench
rm -rf "$work" && mkdir -p "$work" && chmod 700 "$work" # dev.out holds the token
started=$(date +%s)

if ! command -v h2load >/dev/null || ! command -v curl >/dev/null; then
  echo "installing nghttp2-client and curl from Debian"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update >/dev/null
  $sudo apt-get install -y nghttp2-client curl >/dev/null
fi
bash tests/peers/install.sh >/dev/null
python=$PWD/target/peers-venv/bin/python

if [ -z "${AUTHGATE:-}" ]; then
  cargo build --release --quiet --bin authgate
  AUTHGATE=$target/release/authgate
fi
# A copy: a build elsewhere in a shared target directory cannot swap it.
cp "$AUTHGATE" "$work/authgate"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
# Never show a token, whatever a failing command printed.
redact() { sed 's/eyJ[A-Za-z0-9._-]*/<token>/g'; }

RUST_LOG=warn "$work/authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 \
  --token-ttl "$ttl" >"$work/dev.out" 2>"$work/dev.err" &
dev_pid=$!; pids+=("$dev_pid")
for _ in $(seq 600); do
  grep -q '^Ctrl-C' "$work/dev.out" 2>/dev/null && break
  kill -0 $dev_pid 2>/dev/null || break
  sleep 0.1
done
grep -q '^Ctrl-C' "$work/dev.out" || { redact <"$work/dev.err"; fail "authgate dev did not start"; }
field() { sed -n "s/^  $1  *//p" "$work/dev.out" | head -1; }
addr=$(field gRPC | cut -d' ' -f1)
issuer=$(field issuer)
audience=$(field audience)
metrics_url=$(field metrics)
case $metrics_url in http://*/metrics) ;; *) fail "authgate dev serves no metrics (banner: '$metrics_url')" ;; esac
(umask 077; sed -n '/^A token for the dev client/{n;n;p}' "$work/dev.out" >"$work/token.txt")
token=$(cat "$work/token.txt")
[ -n "$token" ] || fail "no token in authgate dev's output"
(umask 077; printf 'Authorization: Bearer %s\n' "$token" >"$work/auth.hdr")
printf '\0\0\0\0\0' >"$work/empty.bin"
rpc=/authgate.v1.PrivateService/GetPrivate

# The token must outlast the run: rounds x 5 rows x (warm-up + run), and
# ten minutes for the rest.
left=$("$python" -c '
import base64, json, sys, time
payload = sys.stdin.read().strip().split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print(int(claims["exp"] - time.time()))' <"$work/token.txt")
need=$((rounds * 5 * (seconds + warmup + 2) + 600))
[ "$left" -ge "$need" ] || fail "the dev token expires in ${left}s, the run needs ${need}s: raise TOKEN_TTL"

# The seed, pointed at the dev issuer; its JWKS is where the post's code looks.
code=$(curl -s -o "$work/jwks.json" -w '%{http_code}' "${issuer}.well-known/jwks.json")
[ "$code" = 200 ] && grep -q '"keys"' "$work/jwks.json" ||
  fail "the dev issuer does not serve ${issuer}.well-known/jwks.json (HTTP $code)"
AUTHGATE_ISSUER=$issuer AUTHGATE_AUDIENCE=$audience \
  "$python" tests/peers/seed_app_jwt.py --port 0 >"$work/seed.out" 2>"$work/seed.err" &
seed_pid=$!; pids+=("$seed_pid")
for _ in $(seq 300); do
  grep -q '^listening ' "$work/seed.out" 2>/dev/null && break
  kill -0 $seed_pid 2>/dev/null || break
  sleep 0.1
done
seed_addr=$(sed -n 's/^listening //p' "$work/seed.out")
[ -n "$seed_addr" ] || { redact <"$work/seed.err"; fail "the seed app did not start"; }

echo "sanity: one call per shape"
private_json='{"message": "This is private"}'
get_root() { # host:port, [header file]: prints "<status> <body>"
  local hdr=(); [ -n "${2:-}" ] && hdr=(-H "@$2")
  : >"$work/get.body"
  curl -s --http1.1 "${hdr[@]}" -o "$work/get.body" -w '%{http_code}' "http://$1/" || true # 000: no answer
  printf ' %s' "$(cat "$work/get.body")"
}
printf 'Authorization: Bearer not-a-jwt\n' >"$work/bad.hdr"
for where in "authgate:$addr" "seed:$seed_addr"; do
  name=${where%%:*} at=${where#*:}
  got=$(get_root "$at" "$work/auth.hdr" | redact) good=${got#* }
  # The JSON, spaced as the post quotes it (authgate) or as FastAPI writes it.
  [ "$(tr -d ' ' <<<"$got")" = "200$(tr -d ' ' <<<"$private_json")" ] || fail "GET / on $name with the dev token: $got"
  got=$(get_root "$at" "$work/bad.hdr" | redact)
  [ "${got%% *}" = 401 ] || fail "GET / on $name with a malformed token: $got (want 401)"
  echo "  GET / on $name: 200 $good with the token, 401 with a malformed one"
done
grpc_call() { # name, curl protocol flag, content-type: checks one OK GetPrivate
  local name=$1 proto=$2 ctype=$3 extra=() file
  file=$work/check-$(printf %s "$name" | tr -c 'A-Za-z0-9-' _)
  [ "$ctype" = application/grpc ] && extra+=(-H 'te: trailers') || extra+=(-H 'x-grpc-web: 1')
  curl -s "$proto" -X POST --data-binary "@$work/empty.bin" -H "content-type: $ctype" "${extra[@]}" \
    -H "@$work/auth.hdr" -D "$file.head" -o "$file.body" "http://$addr$rpc" || fail "$name: curl failed"
  tr -d '\r' <"$file.head" | redact >"$file.head.txt"
  grep -qi '^HTTP/[0-9.]* 200' "$file.head.txt" || { cat "$file.head.txt"; fail "$name: not HTTP 200"; }
  grep -qa 'This is private' "$file.body" || { cat "$file.head.txt"; fail "$name: no \"This is private\" in the answer"; }
  local status
  if [ "$ctype" = application/grpc ]; then # the status is in the trailers, which curl lists with the headers
    status=$(sed -n 's/^grpc-status: *//Ip' "$file.head.txt" | tail -1)
  else # a trailer frame (flag 0x80) at the end of the body
    status=$(LC_ALL=C grep -aoi 'grpc-status: *[0-9]*' "$file.body" | tail -1 | sed 's/.*: *//')
    if grep -qi '^grpc-status:' "$file.head.txt"; then cat "$file.head.txt"; fail "$name: a trailers-only answer"; fi
  fi
  [ "$status" = 0 ] || { cat "$file.head.txt"; fail "$name: grpc-status '$status', want 0"; }
  echo "  $name: HTTP 200, grpc-status 0, \"This is private\""
}
grpc_call "gRPC (h2c)" --http2-prior-knowledge application/grpc
grpc_call "gRPC-Web (HTTP/2)" --http2-prior-knowledge application/grpc-web+proto
grpc_call "gRPC-Web (HTTP/1.1)" --http1.1 application/grpc-web+proto

# authgate's counters: OK and non-OK gRPC calls (any method), and the gate's
# decisions.
scrape() { curl -sf "$metrics_url" >"$1" || fail "cannot read $metrics_url"; }
counts() { # metrics file: "<grpc OK> <grpc not OK> <allowed> <denied>"
  awk '
    /^grpc_server_handled_total\{/ {
      code = $0; sub(/.*grpc_code="/, "", code); sub(/".*/, "", code)
      if (code == "OK") ok += $NF; else notok += $NF
    }
    /^authgate_auth_decisions_total\{result="allowed"/ { allowed += $NF }
    /^authgate_auth_decisions_total\{result="denied"/ { denied += $NF }
    END { printf "%d %d %d %d\n", ok, notok, allowed, denied }' "$1"
}
scrape "$work/metrics-start.txt"
grep -q '^grpc_server_handled_total' "$work/metrics-start.txt" || fail "no grpc_server_handled_total at $metrics_url"
grep -q '^authgate_auth_decisions_total' "$work/metrics-start.txt" || fail "no authgate_auth_decisions_total at $metrics_url"

rows=(grpc web_h2 web_h1 root_authgate root_seed)
declare -A label=(
  [grpc]="gRPC GetPrivate, HTTP/2 (h2c)"
  [web_h2]="gRPC-Web GetPrivate, HTTP/2"
  [web_h1]="gRPC-Web GetPrivate, HTTP/1.1"
  [root_authgate]="\`GET /\` on authgate, HTTP/1.1"
  [root_seed]="\`GET /\` on the seed app (FastAPI + PyJWT, uvicorn), HTTP/1.1"
)
declare -A shape=(
  [grpc]="-c 8 -m 16" [web_h2]="-c 8 -m 16"
  [web_h1]="--h1 -c $h1_conns -m 1" [root_authgate]="--h1 -c $h1_conns -m 1" [root_seed]="--h1 -c $h1_conns -m 1"
)
h2load_counts() { # h2load output: "<req/s> <started> <done> <2xx> <failed> <errored> <not 2xx>", or fails
  local rps started finished failed errored ok2xx other
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$1")
  read -r started finished failed errored < <(sed -n \
    's/^requests: [0-9]* total, \([0-9]*\) started, \([0-9]*\) done, [0-9]* succeeded, \([0-9]*\) failed, \([0-9]*\) errored.*/\1 \2 \3 \4/p' "$1")
  read -r ok2xx other < <(sed -n 's/^status codes: \([0-9]*\) 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/\1 \2 \3 \4/p' "$1" |
    awk '{ print $1, $2 + $3 + $4 }')
  [ -n "$rps" ] && [ -n "${errored:-}" ] && [ -n "${other:-}" ] || { cat "$1"; fail "cannot read h2load's output in $1"; }
  echo "$rps $started $finished $ok2xx $failed $errored $other"
}
delta() { # metrics file before, after: "<OK> <not OK> <allowed> <denied>" added in between
  local b a
  read -r -a b < <(counts "$1")
  read -r -a a < <(counts "$2")
  echo "$((a[0] - b[0])) $((a[1] - b[1])) $((a[2] - b[2])) $((a[3] - b[3]))"
}
# A run: a warm-up of WARMUP_SECONDS (h2load -D) that also sizes the measured
# run, then SECONDS_PER_RUN's worth of calls at the warm-up's rate as a fixed
# count (h2load -n), so that no call is in flight when h2load stops: its
# counts and authgate's must then agree exactly. (A timed run resets the
# streams still open at its end, and the server counts some of them as
# failed calls: the warm-up may add at most that many, the run none.)
run() { # round, row
  local round=$1 row=$2 out=$work/h2load-$2-$1 args url
  # shellcheck disable=SC2206
  args=(${shape[$row]} -t 1)
  case $row in
    grpc) args+=(-d "$work/empty.bin" -H 'content-type: application/grpc' -H 'te: trailers'); url="http://$addr$rpc" ;;
    web_*) args+=(-d "$work/empty.bin" -H 'content-type: application/grpc-web+proto' -H 'x-grpc-web: 1'); url="http://$addr$rpc" ;;
    root_authgate) url="http://$addr/" ;;
    root_seed) url="http://$seed_addr/" ;;
  esac
  args+=(-H "authorization: Bearer $token")
  local rps started finished ok2xx failed errored other ok notok allowed denied
  scrape "$work/metrics-0.txt"
  h2load "${args[@]}" -D "$warmup" "$url" 2>&1 | redact >"$out.warm" || { cat "$out.warm"; fail "h2load, $row warm-up, round $round"; }
  sleep 0.5 # what the server does with the streams reset at the end
  scrape "$work/metrics-1.txt"
  read -r rps started finished ok2xx failed errored other < <(h2load_counts "$out.warm")
  read -r ok notok allowed denied < <(delta "$work/metrics-0.txt" "$work/metrics-1.txt")
  # (h2load counts a status as soon as the head arrives, a call as done at
  # its end: a warm-up can count more 2xx than calls done.)
  [ "$ok2xx" -ge "$finished" ] && [ "$other" = 0 ] && [ "$failed" = 0 ] && [ "$errored" = 0 ] && [ "$denied" = 0 ] &&
    [ "$notok" -le $((started - finished)) ] ||
    { cat "$out.warm"; fail "$row warm-up, round $round: $finished done, $ok2xx 2xx, $other not 2xx, $failed failed, $errored errored; authgate: $notok calls not OK ($((started - finished)) cut off by the end), $denied refused"; }
  echo "$((started - finished)) $notok" >>"$work/cutoff.txt"

  local n
  n=$(awk -v r="$rps" -v s="$seconds" 'BEGIN { n = int(r * s); print (n < 1000) ? 1000 : n }')
  h2load "${args[@]}" -n "$n" "$url" 2>&1 | redact >"$out.out" || { cat "$out.out"; fail "h2load, $row, round $round"; }
  read -r rps started finished ok2xx failed errored other < <(h2load_counts "$out.out")
  [ "$finished" = "$n" ] && [ "$ok2xx" = "$n" ] && [ "$other" = 0 ] && [ "$failed" = 0 ] && [ "$errored" = 0 ] ||
    { cat "$out.out"; fail "$row, round $round: $n calls sent, $finished done, $ok2xx 2xx, $other not 2xx, $failed failed, $errored errored"; }
  # The server counts a call once its answer is sent: wait until all are in.
  local want=$n got
  for _ in $(seq 50); do
    scrape "$work/metrics-2.txt"
    read -r ok notok allowed denied < <(delta "$work/metrics-1.txt" "$work/metrics-2.txt")
    case $row in grpc | web_*) got=$ok ;; root_authgate) got=$allowed ;; root_seed) got=$want ;; esac
    [ "$got" -ge "$want" ] && break
    sleep 0.1
  done
  [ "$notok" = 0 ] && [ "$denied" = 0 ] ||
    fail "$row, round $round: authgate counted $notok calls not OK and $denied refused"
  case $row in
    grpc | web_*) [ "$ok" = "$n" ] || fail "$row, round $round: h2load got $n answers, authgate counted $ok OK GetPrivate calls" ;;
    root_authgate) [ "$allowed" = "$n" ] || fail "$row, round $round: h2load got $n answers, the gate allowed $allowed" ;;
    root_seed) [ "$ok" = 0 ] && [ "$allowed" = 0 ] || fail "$row, round $round: authgate's counters moved ($ok OK, $allowed allowed)" ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$round" "$row" "$rps" "$n" >>"$work/results.tsv"
}

: >"$work/results.tsv"; : >"$work/cutoff.txt"
echo "load: $rounds rounds, rows interleaved; ${seconds}s per run after ${warmup}s of warm-up"
for round in $(seq "$rounds"); do
  # Every other round in reverse (ABBA): the rows compared stay next to each
  # other, and neither always runs first.
  order=("${rows[@]}")
  if [ $((round % 2)) = 0 ]; then order=(); for ((i = ${#rows[@]} - 1; i >= 0; i--)); do order+=("${rows[$i]}"); done; fi
  for row in "${order[@]}"; do run "$round" "$row"; done
  echo "  round $round done"
done
scrape "$work/metrics-end.txt"

median() { # row
  awk -F'\t' -v row="$1" '$2 == row { print $3 }' "$work/results.tsv" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
each() { # row: every round's figure, in round order
  awk -F'\t' -v row="$1" '$2 == row { printf "%s%.0f", sep, $3; sep = " / " }' "$work/results.tsv"
}
declare -A med
for row in "${rows[@]}"; do med[$row]=$(median "$row"); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
goal() { # value, minimum
  awk -v v="$1" -v m="$2" 'BEGIN { print (v >= m) ? "met" : "**NOT met**" }'
}
r_web=$(ratio "${med[web_h2]}" "${med[grpc]}")
r_web1=$(ratio "${med[web_h1]}" "${med[grpc]}")
r_root=$(ratio "${med[root_authgate]}" "${med[root_seed]}")
per_round() { # row, baseline row: each round's ratio
  awk -F'\t' -v a="$1" -v b="$2" '$2 == a { x[$1] = $3 } $2 == b { y[$1] = $3 }
    END { for (r = 1; r in x; r++) { printf "%s%.2f", sep, x[r] / y[r]; sep = " / " } }' "$work/results.tsv"
}
declare -A rcol=(
  [grpc]="1.00 (baseline)"
  [web_h2]="$r_web x gRPC (goal >= 0.8x: $(goal "$r_web" 0.8))"
  [web_h1]="$r_web1 x gRPC (not a goal: another shape)"
  [root_authgate]="$r_root x the seed (goal >= 30x: $(goal "$r_root" 30))"
  [root_seed]="1.00 (baseline)"
)
declare -A scol=(
  [grpc]="h2load -c 8 -m 16" [web_h2]="h2load -c 8 -m 16"
  [web_h1]="h2load --h1 -c $h1_conns" [root_authgate]="h2load --h1 -c $h1_conns" [root_seed]="h2load --h1 -c $h1_conns"
)

echo
echo "### authgate's web faces: gRPC-Web versus gRPC, and \`GET /\` versus the seed app"
echo
echo "Median of $rounds interleaved rounds of ${seconds}s (after ${warmup}s of warm-up), one token, all on loopback."
echo
echo "| row | load | median calls/s | rounds | ratio |"
echo "| --- | --- | ---: | --- | --- |"
for row in "${rows[@]}"; do
  printf '| %s | %s | %.0f | %s | %s |\n' "${label[$row]}" "${scol[$row]}" "${med[$row]}" "$(each "$row")" "${rcol[$row]}"
done
echo
echo "Each round's ratio: gRPC-Web over HTTP/2 / gRPC $(per_round web_h2 grpc); gRPC-Web over HTTP/1.1 / gRPC $(per_round web_h1 grpc);"
echo "authgate / the seed $(per_round root_authgate root_seed)."
echo
read -r -a s < <(counts "$work/metrics-start.txt")
read -r -a e < <(counts "$work/metrics-end.txt")
cut=$(awk '{ c += $1; n += $2 } END { printf "%d %d", c, n }' "$work/cutoff.txt")
codes=$(awk '
  /^grpc_server_handled_total\{/ && !/grpc_code="OK"/ {
    code = $0; sub(/.*grpc_code="/, "", code); sub(/".*/, "", code)
    if (FILENAME == ARGV[1]) was[$1] = $2; else added[code] += $2 - was[$1]
  }
  END { for (c in added) if (added[c] > 0) { printf "%s%s %d", sep, c, added[c]; sep = ", " } }' \
  "$work/metrics-start.txt" "$work/metrics-end.txt")
echo "Checked: one curl per shape answered grpc-status 0 and \"This is private\" (the seed's JSON for \`GET /\`,"
echo "and 401 for a malformed token, from both); each measured run is a fixed count of calls, all answered 2xx, and"
echo "authgate counted exactly that many OK GetPrivate calls (gRPC rows) or gate passes (\`GET /\`), none failed or refused."
echo "Over the whole run authgate counted $((e[0] - s[0])) OK gRPC calls and $((e[2] - s[2])) gate passes, $((e[3] - s[3])) refusals, and"
echo "$((e[1] - s[1])) calls not OK${codes:+ ($codes)}: all from the timed warm-ups, whose end cut ${cut% *} calls off in flight."
echo
echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "- authgate $("$work/authgate" --version | cut -d' ' -f2) (release, \`authgate dev\`, RS256 token valid $ttl, metrics on)"
echo "- $(h2load --version | head -1), $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "- seed: $("$python" -c 'import sys, fastapi, uvicorn, jwt; print(f"Python {sys.version.split()[0]}, FastAPI {fastapi.__version__}, uvicorn {uvicorn.__version__}, PyJWT {jwt.__version__}")')"
echo "- took $(($(date +%s) - started))s"
