#!/usr/bin/env bash
# The test peers tested on their own, without authgate: installs them
# (install.sh), starts python_echo.py and node_echo.js on port 0 (plaintext and
# TLS), calls every method through echo_client.py, reads their events files,
# then runs the seed apps with seed_client.py (seed_app_jwt.py against
# jwks_stub.py). Ends with `N passed, M failed`; exits non-zero on a failure.
# Every wait polls with a deadline; every child is stopped on exit.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bash tests/peers/install.sh || { echo "0 passed, 1 failed"; exit 1; }

py="$root/target/peers-venv/bin/python"
peers="$root/tests/peers"
work="$root/target/peers-selftest"
rm -rf "$work" && mkdir -p "$work"

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
# has NAME TEXT: the last command's output contains TEXT.
has() { if grep -qF -- "$2" "$work/last"; then pass "$1"; else fail "$1 (no '$2')"; fi; }

# wait_for FILE PATTERN SECONDS: polls until a line of FILE matches the regex.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
# start NAME COMMAND...: runs a server in the background and sets `addr` to
# the address it prints (not in a subshell, so that the trap knows the pid).
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  echo $! >"$work/$name.pid"
  addr=
  if ! wait_for "$work/$name.out" '^listening ' 30; then
    echo "$name did not start:"
    sed 's/^/    /' "$work/$name.err"
    return 1
  fi
  addr=$(sed -n 's/^listening //p' "$work/$name.out" | head -1)
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

# A made-up credential: it must reach the servers and never be written out.
token="selftest-$RANDOM$RANDOM-token"
token_hash=$(printf %s "$token" | sha256sum | cut -c1-16)

# A self-signed certificate for 127.0.0.1 and localhost.
"$py" - "$work" <<'EOF'
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
open(f"{sys.argv[1]}/tls.crt", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(f"{sys.argv[1]}/tls.key", "wb").write(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
EOF

echo_suite() { # NAME COMMAND... (the server, without --events)
  local name=$1
  shift
  local events="$work/$name.events"
  echo "== $name"
  start "$name" "$@" --events "$events" || { fail "$name starts"; return 0; }
  pass "$name prints 'listening $addr'"
  local c=("$py" "$peers/echo_client.py" --target "$addr")

  check "$name health" "${c[@]}" health
  has "$name health SERVING" '"status": "SERVING"'
  check "$name health of echo.v1.Echo" "${c[@]}" health --service echo.v1.Echo
  check "$name reflection lists Echo and Health" "${c[@]}" list
  has "$name reflection lists Health" '"grpc.health.v1.Health"'

  check "$name Unary" "${c[@]}" --token "$token" --metadata x-trace=abc --metadata x-raw-bin=AAEC unary --message hi
  has "$name Unary sees x-trace" '"x-trace": "abc"'
  has "$name Unary sees binary metadata" '"x-raw-bin": "AAEC"'
  has "$name Unary sees the token, redacted" "\"authorization\": \"Bearer <redacted sha256:$token_hash>\""
  has "$name Unary without a deadline" '"deadline": ""'
  check "$name ServerStream of 5" "${c[@]}" server-stream --count 5 --message s
  check "$name ServerStream of 0" "${c[@]}" server-stream --count 0
  check "$name ClientStream" "${c[@]}" client-stream --message a --message bc --message d
  check "$name Bidi" "${c[@]}" bidi --message x --message y --message z --interval-ms 20
  check "$name Fail with code 7 and a trailer" "${c[@]}" fail --code 7 --message denied \
    --trailer-key x-why --trailer-value because
  has "$name Fail says PERMISSION_DENIED" '"code": "PERMISSION_DENIED"'
  check "$name Fail with code 16 and a binary trailer" "${c[@]}" fail --code UNAUTHENTICATED \
    --message who --trailer-key x-detail-bin --trailer-value opaque
  check "$name Hang ends at its deadline" "${c[@]}" --timeout-ms 300 hang
  check "$name Hang cancelled" "${c[@]}" cancel --method hang
  check "$name ServerStream cancelled" "${c[@]}" cancel --method server-stream
  check "$name Bidi cancelled" "${c[@]}" cancel --method bidi
  check "$name deadline seen, Hang past it" "${c[@]}" deadline --deadline-ms 4000 --hang-ms 200
  if "${c[@]}" --expect-code UNAUTHENTICATED unary >"$work/last" 2>&1; then
    fail "$name echo_client exits 1 on an unexpected code"
  else
    pass "$name echo_client exits 1 on an unexpected code"
  fi

  wait_event "$name event: call Unary with its metadata" "$events" call /echo.v1.Echo/Unary '"x-trace":"abc"'
  wait_event "$name event: call Health/Check" "$events" call /grpc.health.v1.Health/Check
  wait_event "$name event: deadline of Unary" "$events" deadline /echo.v1.Echo/Unary '"remaining_ms":'
  wait_event "$name event: Hang cancelled by the caller" "$events" cancelled /echo.v1.Echo/Hang '"deadline_passed":false'
  wait_event "$name event: Hang ended by its deadline" "$events" cancelled /echo.v1.Echo/Hang '"deadline_passed":true'
  wait_event "$name event: ServerStream cancelled" "$events" cancelled /echo.v1.Echo/ServerStream
  wait_event "$name event: Bidi cancelled" "$events" cancelled /echo.v1.Echo/Bidi
  # Each cancel once, and none for the calls that finished (Fail included).
  local counts="" want="Unary=0 ServerStream=1 ClientStream=0 Bidi=1 Fail=0 Hang=3" m
  for m in Unary ServerStream ClientStream Bidi Fail Hang; do
    counts="$counts $m=$(event_count "$events" cancelled "/echo.v1.Echo/$m")"
  done
  echo "cancelled events:$counts, want $want" >"$work/last"
  if [ "${counts# }" = "$want" ]; then
    pass "$name event: a cancel for each call cancelled, none for those that finished"
  else
    fail "$name event: a cancel for each call cancelled, none for those that finished"
  fi
  if grep -qF -- "$token" "$events" "$work/$name.out" "$work/$name.err"; then
    fail "$name never writes the token"
  else
    pass "$name never writes the token"
  fi
  stop "$name"

  start "$name-tls" "$@" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
    || { fail "$name-tls starts"; return 0; }
  check "$name over TLS: Unary" "$py" "$peers/echo_client.py" --target "$addr" \
    --ca "$work/tls.crt" --server-name localhost unary
  check "$name over TLS: Bidi" "$py" "$peers/echo_client.py" --target "$addr" \
    --ca "$work/tls.crt" --server-name localhost bidi
  stop "$name-tls"
}

echo_suite python_echo "$py" "$peers/python_echo.py"
echo_suite node_echo node "$peers/node_echo.js"

echo "== seed_app"
if start seed_app "$py" "$peers/seed_app.py" --events "$work/seed.events"; then
  url="http://$addr"
  check "seed GET / with a token" env AUTHGATE_TOKEN="$token" "$py" "$peers/seed_client.py" "$url/"
  has "seed GET / answers the seed's body" '{"message": "This is private"}'
  check "seed GET /admin/stats" "$py" "$peers/seed_client.py" "$url/admin/stats"
  has "seed /admin/stats body" '{"admin": true}'
  check "seed GET /whoami" "$py" "$peers/seed_client.py" --header 'x-authgate-subject: alice' \
    --header 'x-authgate-scopes: read:private' --header 'x-other: no' "$url/whoami"
  has "seed /whoami shows x-authgate-* headers" '{"x-authgate-scopes": "read:private", "x-authgate-subject": "alice"}'
  check "seed GET /nowhere is 404" "$py" "$peers/seed_client.py" --expect 404 "$url/nowhere"
  check "seed /request shows method, path and query" "$py" "$peers/seed_client.py" "$url/request/a/b?x=1"
  has "seed /request path and query" '"path": "/request/a/b", "query": "x=1"'
  wait_event "seed event: request for / with the token redacted" "$work/seed.events" request GET '"path":"/"' \
    "\"authorization\":\"Bearer <redacted sha256:$token_hash>\""
  if grep -qF -- "$token" "$work/seed.events" "$work/seed_app.out" "$work/seed_app.err"; then
    fail "seed_app never writes the token"
  else
    pass "seed_app never writes the token"
  fi
  stop seed_app
else
  fail "seed_app starts"
fi

echo "== seed_app_jwt against jwks_stub"
if start jwks_stub "$py" "$peers/jwks_stub.py" --audience selftest-api --tokens "$work/tokens" \
  && wait_for "$work/jwks_stub.out" '^issuer ' 10; then
  issuer=$(sed -n 's/^issuer //p' "$work/jwks_stub.out")
  sample() { sed -n "s/^$1 //p" "$work/tokens"; }
  if start seed_app_jwt env AUTHGATE_ISSUER="$issuer" AUTHGATE_AUDIENCE=selftest-api \
    "$py" "$peers/seed_app_jwt.py"; then
    url="http://$addr/"
    check "seed_app_jwt: a good token" env AUTHGATE_TOKEN="$(sample good)" "$py" "$peers/seed_client.py" "$url"
    has "seed_app_jwt: the seed's body" '{"message": "This is private"}'
    for t in expired wrong-audience other-key; do
      check "seed_app_jwt: $t is 401" env AUTHGATE_TOKEN="$(sample $t)" "$py" "$peers/seed_client.py" --expect 401 "$url"
    done
    check "seed_app_jwt: no token is refused" "$py" "$peers/seed_client.py" --expect 401 "$url"
    # One JWKS fetch per verified request: the cost the proxy takes away.
    if wait_for "$work/jwks_stub.err" '^jwks fetch 4$' 10; then
      pass "seed_app_jwt fetches the key set on every request"
    else
      cp "$work/jwks_stub.err" "$work/last"
      fail "seed_app_jwt fetches the key set on every request"
    fi
    stop seed_app_jwt
  else
    fail "seed_app_jwt starts"
  fi
  stop jwks_stub
else
  fail "jwks_stub starts"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
