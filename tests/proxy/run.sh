#!/usr/bin/env bash
# `authgate proxy` in front of real upstreams in other languages: the grpcio
# (Python) and grpc-js (Node) Echo servers over HTTP/2, and the seed FastAPI
# app on uvicorn over HTTP/1.1, called by grpcio, grpcurl and requests
# clients. Tokens come from `authgate dev`'s issuer. Checks, through the
# upstreams' events files, that what the gate refuses never arrives, that
# forged x-authgate-* headers never arrive and the proxy's own do, and that
# cancels, deadlines, statuses and trailers pass both ways.
#
# Installs the peers (tests/peers/install.sh) and grpcurl (target/interop-venv),
# builds authgate, and ends with `N passed, M failed`; exits non-zero on a
# failure. Every wait polls with a deadline; every child is stopped on exit.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bash tests/peers/install.sh >/dev/null || { echo "0 passed, 1 failed (peers install)"; exit 1; }

interop_venv=target/interop-venv
if [ ! -x "$interop_venv/bin/grpcurl" ]; then
  python3 -m venv "$interop_venv"
  "$interop_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi
grpcurl="$root/$interop_venv/bin/grpcurl"

py="$root/target/peers-venv/bin/python"
peers="$root/tests/peers"
work="$root/target/proxy-test"
rm -rf "$work" && mkdir -p "$work"

# The build directory may be shared with other checkouts: keep our own copy
# of the binary the moment it is built.
cargo build --quiet --bin authgate || { echo "0 passed, 1 failed (build)"; exit 1; }
cp "${CARGO_TARGET_DIR:-$root/target}/debug/authgate" "$work/authgate"
authgate="$work/authgate"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $1"
  [ -f "$work/last" ] && sed 's/^/    /' "$work/last" | head -20
  return 0
}
# check NAME COMMAND...: passes when COMMAND exits 0; its output is in $work/last.
check() {
  local name=$1
  shift
  if timeout 30 "$@" >"$work/last" 2>&1; then pass "$name"; else fail "$name"; fi
}
# has NAME TEXT / lacks NAME TEXT: the last command's output holds TEXT, or not.
has() { if grep -qF -- "$2" "$work/last"; then pass "$1"; else fail "$1 (no '$2')"; fi; }
lacks() { if grep -qF -- "$2" "$work/last"; then fail "$1 ('$2' is there)"; else pass "$1"; fi; }

# wait_for FILE PATTERN SECONDS: polls until a line of FILE matches the regex.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
# start NAME PATTERN COMMAND...: runs a server in the background, waits for a
# line of its stdout or stderr matching PATTERN, and keeps its pid.
start() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  echo $! >"$work/$name.pid"
  if ! wait_for "$work/$name.out" "$pattern" 30 && ! wait_for "$work/$name.err" "$pattern" 1; then
    echo "$name did not start:"
    sed 's/^/    /' "$work/$name.err" | head -20
    return 1
  fi
}
# start_peer NAME COMMAND...: a peer server; sets `addr` to the address it prints.
start_peer() {
  start "$@" || return 1
  addr=$(sed -n 's/^listening //p' "$work/$1.out" | head -1)
}
# start_proxy NAME ARGS...: `authgate proxy` on port 0 trusting the dev issuer;
# sets `addr` to where it serves.
start_proxy() {
  local name=$1
  shift
  start "$name" 'authgate serving' "$authgate" proxy --listen 127.0.0.1:0 \
    --issuer "$issuer" --audience "$audience" "$@" || return 1
  addr=$(sed -n 's/.*authgate serving listen=\([0-9.:]*\).*/\1/p' "$work/$name.err" | head -1)
}
# event_count FILE EVENT METHOD [TEXT]...: lines of that event for that
# method (a gRPC path, or an HTTP method for seed_app) holding every TEXT.
event_count() {
  local file=$1 lines
  lines=$(grep -F "\"event\":\"$2\"" "$file" 2>/dev/null | grep -F "\"method\":\"$3\"")
  shift 3
  for text in "$@"; do lines=$(grep -F -- "$text" <<<"$lines"); done
  [ -n "$lines" ] && wc -l <<<"$lines" || echo 0
}
# wait_event NAME FILE EVENT METHOD [TEXT]: passes once such a line is there.
wait_event() {
  local name=$1 deadline=$((SECONDS + 10))
  shift
  until [ "$(event_count "$@")" -gt 0 ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "missing: $*" >"$work/last"
      cat "$1" >>"$work/last" 2>/dev/null
      fail "$name"
      return 0
    fi
    sleep 0.05
  done
  pass "$name"
}
# none NAME COUNT: passes when COUNT is 0 (what a refused call left upstream).
none() {
  if [ "$2" -eq 0 ]; then pass "$1"; else echo "$2 arrived" >"$work/last"; fail "$1"; fi
}
# stop NAME: SIGTERM, then the exit code must be 0 within 10 s.
stop() {
  local pid rc deadline=$((SECONDS + 10))
  pid=$(cat "$work/$1.pid")
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "still running after SIGTERM" >"$work/last"
    fail "$1 stops on SIGTERM"
    return 0
  fi
  wait "$pid"
  rc=$?
  echo "exit code $rc" >"$work/last"
  if [ "$rc" -eq 0 ]; then pass "$1 exits 0 on SIGTERM"; else fail "$1 exits 0 on SIGTERM"; fi
}
# ready NAME ADDR: the proxy's health turns SERVING (its keys have loaded).
ready() {
  local deadline=$((SECONDS + 30))
  until "$py" "$peers/echo_client.py" --target "$2" health >"$work/last" 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { fail "$1 health turns SERVING"; return 1; }
    sleep 0.1
  done
  pass "$1 health turns SERVING"
}

echo "== authgate dev: the issuer"
secret="proxy-$RANDOM$RANDOM"
start dev '^Ctrl-C' "$authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 \
  --client-secret "$secret" --grant-scope admin || { echo "0 passed, 1 failed (dev)"; exit 1; }
field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
issuer=$(field issuer)
audience=$(field audience)
# The banner's token has every scope granted (admin too); the one the
# tests mostly use has read:private alone.
admin_token=$(sed -n '/^A token/{n;n;p}' "$work/dev.out")
token=$(AUTHGATE_CLIENT_SECRET="$secret" "$authgate" token --issuer "$issuer" \
  --audience "$audience" --client-id authgate-dev --scope read:private --no-cache)
token_hash=$(printf %s "$token" | sha256sum | cut -c1-16)
export TOKEN="$token"
[ -n "$token" ] && [ -n "$admin_token" ] && pass "dev issues tokens" || fail "dev issues tokens"

echo_suite() { # NAME EXTRA-PROXY-ARGS -- UPSTREAM COMMAND...
  local name=$1 extra=()
  shift
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
  local events="$work/$name.events"
  echo "== $name behind authgate proxy"
  start_peer "$name" '^listening ' "$@" --events "$events" || { fail "$name starts"; return 0; }
  local upstream=$addr
  start_proxy "$name-proxy" --upstream "http://$upstream" "${extra[@]}" \
    || { fail "$name-proxy starts"; return 0; }
  local proxy=$addr
  local c=("$py" "$peers/echo_client.py" --target "$proxy")
  ready "$name-proxy" "$proxy" || return 0

  check "$name health through the proxy" "${c[@]}" health --service echo.v1.Echo
  wait_event "$name event: health went upstream" "$events" call /grpc.health.v1.Health/Check
  check "$name reflection through the proxy lists Echo" "${c[@]}" list

  # All four kinds of call, with a forged identity and a marker of our own.
  check "$name Unary" "${c[@]}" --token-env TOKEN --metadata x-trace=unary-ok \
    --metadata x-authgate-subject=mallory --metadata x-authgate-scopes=admin \
    --metadata x-authgate-issuer=https://evil.example/ --metadata x-authgate-claims=e30 \
    unary --message hi
  has "$name Unary: the subject is the token's" '"x-authgate-subject": "authgate-dev@clients"'
  has "$name Unary: the issuer is the token's" "\"x-authgate-issuer\": \"$issuer\""
  has "$name Unary: the scopes are the token's" '"x-authgate-scopes": "read:private"'
  lacks "$name Unary: no forged subject" 'mallory'
  lacks "$name Unary: no forged issuer" 'evil.example'
  lacks "$name Unary: no authorization upstream" '"authorization"'
  local claims
  claims=$(sed -n 's/.*"x-authgate-claims": "\([A-Za-z0-9_-]*\)".*/\1/p' "$work/last" | head -1)
  "$py" -c 'import base64, json, sys; c = sys.argv[1]; d = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
assert d["sub"] == "authgate-dev@clients" and d["iss"] == sys.argv[2], d' "$claims" "$issuer" \
    >"$work/last" 2>&1 && pass "$name Unary: x-authgate-claims is the verified payload" \
    || fail "$name Unary: x-authgate-claims is the verified payload"
  wait_event "$name event: Unary arrived with the proxy's identity" "$events" call /echo.v1.Echo/Unary \
    '"x-trace":"unary-ok"' '"x-authgate-subject":"authgate-dev@clients"'
  none "$name event: no forged identity arrived" "$(grep -cF mallory "$events")"
  check "$name ServerStream of 5" "${c[@]}" --token-env TOKEN server-stream --count 5 --message s
  check "$name ClientStream" "${c[@]}" --token-env TOKEN client-stream --message a --message bc --message d
  check "$name Bidi" "${c[@]}" --token-env TOKEN bidi --message x --message y --message z --interval-ms 20

  # The upstream's statuses and trailers come back unchanged.
  check "$name Fail: code 7, message and trailer unchanged" "${c[@]}" --token-env TOKEN \
    fail --code 7 --message 'denied by the upstream' --trailer-key x-why --trailer-value because
  has "$name Fail: PERMISSION_DENIED" '"code": "PERMISSION_DENIED"'
  has "$name Fail: the message" '"details": "denied by the upstream"'
  has "$name Fail: the trailer" '"x-why": "because"'
  check "$name Fail: code 16 with a binary trailer" "${c[@]}" --token-env TOKEN \
    fail --code UNAUTHENTICATED --message who --trailer-key x-detail-bin --trailer-value opaque

  # Deadlines and cancels reach the upstream.
  check "$name Hang ends at its deadline" "${c[@]}" --token-env TOKEN --timeout-ms 300 hang
  check "$name Hang cancelled" "${c[@]}" --token-env TOKEN cancel --method hang
  check "$name Bidi cancelled" "${c[@]}" --token-env TOKEN cancel --method bidi
  check "$name deadline passed on" "${c[@]}" --token-env TOKEN deadline --deadline-ms 4000 --hang-ms 200
  wait_event "$name event: the deadline arrived" "$events" deadline /echo.v1.Echo/Unary '"remaining_ms":'
  wait_event "$name event: Hang cancelled by the caller" "$events" cancelled /echo.v1.Echo/Hang '"deadline_passed":false'
  wait_event "$name event: Hang ended by its deadline" "$events" cancelled /echo.v1.Echo/Hang '"deadline_passed":true'
  wait_event "$name event: Bidi cancelled" "$events" cancelled /echo.v1.Echo/Bidi

  # Refused calls never arrive.
  check "$name no token: UNAUTHENTICATED" "${c[@]}" --metadata x-trace=refused-none \
    --expect-code UNAUTHENTICATED unary
  has "$name no token: the gate's message" 'missing authorization metadata'
  check "$name bad token: UNAUTHENTICATED" "${c[@]}" --token "${token%????}AAAA" \
    --metadata x-trace=refused-bad --expect-code UNAUTHENTICATED bidi
  check "$name not a JWT: UNAUTHENTICATED" "${c[@]}" --token nonsense \
    --metadata x-trace=refused-junk --expect-code UNAUTHENTICATED client-stream
  # A call that did pass since proves the events file is being written.
  check "$name a call after the refusals" "${c[@]}" --token-env TOKEN --metadata x-trace=after unary
  wait_event "$name event: the call after the refusals" "$events" call /echo.v1.Echo/Unary '"x-trace":"after"'
  none "$name event: no refused call arrived" "$(grep -c 'refused-' "$events")"

  if [ "${#extra[@]}" -gt 0 ]; then
    # --public /echo.v1.Echo/ServerStream: no token needed, no identity sent.
    check "$name public ServerStream without a token" "${c[@]}" --metadata x-authgate-subject=mallory \
      --metadata x-trace=public server-stream --count 2
    lacks "$name public: no identity headers" 'x-authgate-'
    check "$name public path is only that path" "${c[@]}" --expect-code UNAUTHENTICATED unary
  fi

  if grep -qF -- "$token" "$events" "$work/$name-proxy.out" "$work/$name-proxy.err"; then
    fail "$name: the token is never written"
  else
    pass "$name: the token is never written"
  fi

  # An upstream that goes away: UNAVAILABLE at once, its address in the log only.
  stop "$name"
  check "$name gone: UNAVAILABLE" "${c[@]}" --token-env TOKEN --expect-code UNAVAILABLE unary
  has "$name gone: the message says so" "upstream unavailable"
  lacks "$name gone: the message keeps the address" "$upstream"
  stop "$name-proxy"
}

echo_suite python_echo -- "$py" "$peers/python_echo.py"
echo_suite node_echo --public /echo.v1.Echo/ServerStream -- node "$peers/node_echo.js"

echo "== grpcurl through the proxy"
if start_peer grpcurl_echo '^listening ' "$py" "$peers/python_echo.py" --events "$work/grpcurl.events" \
  && start_proxy grpcurl-proxy --upstream "http://$addr" && ready grpcurl-proxy "$addr"; then
  check "grpcurl list" "$grpcurl" -plaintext "$addr" list
  has "grpcurl list shows the upstream's Echo" 'echo.v1.Echo'
  check "grpcurl describe" "$grpcurl" -plaintext "$addr" describe echo.v1.Echo
  has "grpcurl describe shows rpc Bidi" 'rpc Bidi'
  check "grpcurl call Unary with a token" "$grpcurl" -plaintext -H "authorization: Bearer $token" \
    -d '{"message": "from grpcurl"}' "$addr" echo.v1.Echo/Unary
  has "grpcurl call: the reply" '"message": "from grpcurl"'
  if timeout 30 "$grpcurl" -plaintext -d '{}' "$addr" echo.v1.Echo/Unary >"$work/last" 2>&1; then
    fail "grpcurl without a token is refused"
  else
    has "grpcurl without a token is refused" 'Code: Unauthenticated'
  fi
  stop grpcurl-proxy
  stop grpcurl_echo
else
  fail "grpcurl: the upstream and the proxy start"
fi

echo "== seed FastAPI app behind --upstream-protocol http1"
if start_peer seed_app '^listening ' "$py" "$peers/seed_app.py" --events "$work/seed.events"; then
  seed=$addr
  if start_proxy seed-proxy --upstream "http://$seed" --upstream-protocol http1 \
    --require-scope '/admin/*=admin'; then
    url="http://$addr"
    ready_deadline=$((SECONDS + 30))
    until AUTHGATE_TOKEN="$token" "$py" "$peers/seed_client.py" "$url/" >"$work/last" 2>&1; do
      [ "$SECONDS" -lt "$ready_deadline" ] || break
      sleep 0.1
    done
    check "seed GET / with a token" env AUTHGATE_TOKEN="$token" "$py" "$peers/seed_client.py" "$url/"
    has "seed GET /: the seed's body" '{"message": "This is private"}'
    check "seed GET /whoami: the proxy's identity, not the forged one" env AUTHGATE_TOKEN="$token" \
      "$py" "$peers/seed_client.py" --header 'x-authgate-subject: mallory' "$url/whoami"
    has "seed /whoami: subject" '"x-authgate-subject": "authgate-dev@clients"'
    has "seed /whoami: scopes" '"x-authgate-scopes": "read:private'
    lacks "seed /whoami: no forged subject" 'mallory'
    check "seed GET /admin/stats without the scope: 403" env AUTHGATE_TOKEN="$token" \
      "$py" "$peers/seed_client.py" --expect 403 "$url/admin/stats"
    has "seed 403: the gate's message" 'missing required scope `admin`'
    curl -s -o /dev/null -D "$work/last" -H "authorization: Bearer $token" "$url/admin/stats"
    has "seed 403: WWW-Authenticate insufficient_scope" \
      'www-authenticate: Bearer realm="authgate", error="insufficient_scope", scope="admin"'
    # Paths uvicorn would read as /admin/stats (it decodes escapes; others
    # resolve dot segments or ignore case) never pass the rule for /admin/*.
    for spelled in '/%61dmin/stats' '/admin%2Fstats' '/x/../admin/stats' '//admin/stats' \
      '/admin;x/stats' '/ADMIN/stats' '/admin/stats/' '/admin'; do
      want=400
      case $spelled in /ADMIN/stats | /admin/stats/ | /admin) want=403 ;; esac
      curl -s --path-as-is -o "$work/last" -w '%{http_code}' -H "authorization: Bearer $token" \
        "$url$spelled" >"$work/code"
      if [ "$(cat "$work/code")" = "$want" ] &&
        { [ "$want" = 403 ] || grep -qF 'request path refused' "$work/last"; }; then
        pass "seed GET $spelled without the scope: $want"
      else
        fail "seed GET $spelled without the scope: $want (got $(cat "$work/code"))"
      fi
    done
    check "seed GET /admin/stats with the scope" env AUTHGATE_TOKEN="$admin_token" \
      "$py" "$peers/seed_client.py" "$url/admin/stats"
    has "seed /admin/stats body" '{"admin": true}'
    check "seed GET / without a token: 401" "$py" "$peers/seed_client.py" --expect 401 "$url/"
    curl -s -o /dev/null -D "$work/last" "$url/"
    has "seed 401: WWW-Authenticate" 'www-authenticate: Bearer realm="authgate"'
    check "seed GET / with a bad token: 401 invalid_token" env AUTHGATE_TOKEN=nonsense \
      "$py" "$peers/seed_client.py" --expect 401 "$url/"
    curl -s -o /dev/null -D "$work/last" -H 'authorization: Bearer nonsense' "$url/"
    has "seed 401: error=invalid_token" 'error="invalid_token"'
    wait_event "seed event: the admin call arrived" "$work/seed.events" request GET '"path":"/admin/stats"'
    none "seed event: the refused admin calls never arrived" \
      "$(($(event_count "$work/seed.events" request GET '"path":"/admin/stats"') - 1))"
    none "seed event: authorization is not forwarded" "$(grep -c '"authorization"' "$work/seed.events")"
    check "seed: a gRPC call to an HTTP/1.1 upstream is UNIMPLEMENTED" "$py" "$peers/echo_client.py" \
      --target "$addr" --token-env TOKEN --expect-code UNIMPLEMENTED unary
    if grep -qF -- "$token" "$work/seed.events" "$work/seed-proxy.out" "$work/seed-proxy.err"; then
      fail "seed: the token is never written"
    else
      pass "seed: the token is never written"
    fi
    stop seed_app
    check "seed gone: 502" env AUTHGATE_TOKEN="$token" "$py" "$peers/seed_client.py" --expect 502 "$url/"
    has "seed gone: the detail says so" "upstream unavailable"
    lacks "seed gone: the detail keeps the address" "$seed"
    stop seed-proxy
  else
    fail "seed-proxy starts"
  fi
else
  fail "seed_app starts"
fi

echo "== an upstream that was never there"
# A port held but not listened on: connections are refused.
held=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if start_proxy nowhere-proxy --upstream "http://127.0.0.1:$held"; then
  proxy=$addr
  # Until the keys load the gate answers UNAVAILABLE itself; then the proxy does.
  deadline=$((SECONDS + 30))
  until "$py" "$peers/echo_client.py" --target "$proxy" --token-env TOKEN --expect-code UNAVAILABLE \
    unary 2>&1 | grep -qF "upstream unavailable"; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  started=$(date +%s%N)
  check "nowhere: UNAVAILABLE" "$py" "$peers/echo_client.py" --target "$proxy" --token-env TOKEN \
    --expect-code UNAVAILABLE unary
  took_ms=$((($(date +%s%N) - started) / 1000000))
  has "nowhere: says so" "upstream unavailable"
  lacks "nowhere: keeps the address" "$held"
  echo "took ${took_ms}ms" >"$work/last"
  if [ "$took_ms" -le 3000 ]; then pass "nowhere: answered quickly"; else fail "nowhere: answered quickly"; fi
  check "nowhere: health is the upstream's, UNAVAILABLE" "$py" "$peers/echo_client.py" --target "$proxy" \
    --expect-code UNAVAILABLE health
  stop nowhere-proxy
else
  fail "nowhere-proxy starts"
fi

stop dev
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
