#!/usr/bin/env bash
# `authgate authz` behind the real proxies it answers: Debian's nginx 1.22
# (auth_request) and Caddy 2.6 (forward_auth), each running its config from
# deploy/authz/ as the docs show it (only the addresses changed), in front of
# a small Python upstream (tests/authz/upstream.py) that records every
# request it gets. Tokens come from `authgate dev`'s issuer. Checks that the
# allowed request arrives with authz's identity and without the caller's
# forged one or its token, that refused ones (no token, a bad one, a missing
# scope, a forged X-Forwarded-Uri, a public path in the query) never arrive
# and carry the RFC 6750 answer, and that public paths arrive with no
# identity at all.
#
# Installs nginx and caddy from Debian when missing, builds authgate, and
# ends with `N passed, M failed`; exits non-zero on a failure. Every wait
# polls with a deadline; every child is stopped on exit.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v caddy >/dev/null || missing+=(caddy)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
    "${missing[@]}" >/dev/null || { echo "0 passed, 1 failed (apt-get install)"; exit 1; }
fi

work="$root/target/authz-test"
rm -rf "$work" && mkdir -p "$work/nginx/logs" "$work/caddy"

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
# wait_for FILE PATTERN SECONDS: polls until a line of FILE matches the regex.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
# start NAME PATTERN COMMAND...: a server in the background, waited for
# until a line of its stdout or stderr matches PATTERN.
start() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  if ! wait_for "$work/$name.out" "$pattern" 30 && ! wait_for "$work/$name.err" "$pattern" 1; then
    echo "$name did not start:"
    sed 's/^/    /' "$work/$name.err" "$work/$name.out" | head -20
    return 1
  fi
}
# free_port: a port on 127.0.0.1 nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_port PORT: until something listens there.
wait_port() {
  local deadline=$((SECONDS + 30))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# call URL [CURL ARGS...]: the status, headers and body in $work/last.
call() {
  local url=$1
  shift
  curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@" "$url" >"$work/status" 2>&1
  { cat "$work/status"; echo; cat "$work/headers" "$work/body"; } >"$work/last"
}
status_is() { # NAME STATUS
  if [ "$(cat "$work/status")" = "$2" ]; then pass "$1"; else fail "$1 (status $(cat "$work/status"), not $2)"; fi
}
has() { if grep -qiF -- "$2" "$work/last"; then pass "$1"; else fail "$1 (no '$2')"; fi; }
lacks() { if grep -qiF -- "$2" "$work/last"; then fail "$1 ('$2' is there)"; else pass "$1"; fi; }
# arrived MARKER: how many requests carrying MARKER the upstream got.
arrived() { grep -cF -- "$1" "$work/upstream.events" 2>/dev/null || true; }
never() { # NAME MARKER
  local n
  n=$(arrived "$2")
  if [ "${n:-0}" -eq 0 ]; then pass "$1"; else echo "$n arrived" >"$work/last"; fail "$1"; fi
}

echo "== authgate dev: the issuer"
secret="authz-$RANDOM$RANDOM"
start dev '^Ctrl-C' "$authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 \
  --client-secret "$secret" --grant-scope admin || { echo "0 passed, 1 failed (dev)"; exit 1; }
field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
issuer=$(field issuer)
audience=$(field audience)
token_with() {
  AUTHGATE_CLIENT_SECRET="$secret" "$authgate" token --issuer "$issuer" \
    --audience "$audience" --client-id authgate-dev --scope "$1" --no-cache
}
admin=$(token_with admin)
reader=$(token_with read:private)
[ -n "$admin" ] && [ -n "$reader" ] && pass "dev issues tokens" || fail "dev issues tokens"

echo "== authz and the upstream"
start upstream '^listening ' python3 tests/authz/upstream.py --events "$work/upstream.events" \
  || { echo "0 passed, 1 failed (upstream)"; exit 1; }
upstream=$(sed -n 's/^listening //p' "$work/upstream.out")
start authz 'authgate serving' "$authgate" authz --listen 127.0.0.1:0 \
  --issuer "$issuer" --audience "$audience" \
  --require-scope '/admin/*=admin' --require-scope '/admin=admin' --public '/docs/*' \
  || { echo "0 passed, 1 failed (authz)"; exit 1; }
authz=$(sed -n 's/.*authgate serving listen=\([0-9.:]*\).*/\1/p' "$work/authz.err" | head -1)
# Ready once the keys have loaded: an allowed question answers 200.
deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $admin" \
  -H 'x-forwarded-uri: /admin/x' "http://$authz/")" = 200 ]; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "0 passed, 1 failed (authz ready)"; exit 1; }
  sleep 0.1
done
pass "authz answers once its keys load"

# The same cases through each proxy at BASE.
suite() {
  local name=$1 base=$2
  echo "== $name"
  call "$base/admin/users?page=2" -H "authorization: Bearer $admin" \
    -H "x-authgate-subject: mallory" -H "X-Authgate-Scopes: forged" -H "x-trace: $name-allowed"
  status_is "$name: allowed with the scope" 200
  has "$name: the upstream is told the subject" '"x-authgate-subject": ["authgate-dev@clients"]'
  has "$name: ... the issuer" "\"x-authgate-issuer\": [\"$issuer\"]"
  has "$name: ... the scopes" '"x-authgate-scopes": ["admin"]'
  has "$name: ... the claims" '"x-authgate-claims": ["ey'
  lacks "$name: no forged subject arrives" 'mallory'
  lacks "$name: no forged scopes arrive" 'forged'
  lacks "$name: the token does not arrive" '"authorization"'
  has "$name: the query arrives" '/admin/users?page=2'
  if [ "$name" = caddy ]; then
    # nginx can only replace headers it names (the four); Caddy removes
    # every x-authgate-* the caller sent.
    call "$base/admin/users" -H "authorization: Bearer $admin" -H "x-authgate-roles: forged"
    status_is "$name: allowed with a header of ours the answer does not set" 200
    lacks "$name: ... which does not arrive" 'forged'
  fi

  call "$base/admin/users" -H "x-trace: $name-none"
  status_is "$name: no token: 401" 401
  has "$name: no token: the challenge" 'www-authenticate: Bearer realm="authgate"'
  never "$name: no token never arrives" "$name-none"

  call "$base/admin/users" -H "authorization: Bearer ${reader%????}AAAA" -H "x-trace: $name-bad"
  status_is "$name: a bad token: 401" 401
  has "$name: a bad token: invalid_token" 'error="invalid_token"'
  never "$name: a bad token never arrives" "$name-bad"

  call "$base/admin/users" -H "authorization: Bearer $reader" -H "x-trace: $name-scope"
  status_is "$name: a missing scope: 403" 403
  never "$name: a missing scope never arrives" "$name-scope"

  # What the caller says the original was is not asked about.
  call "$base/admin/users" -H 'x-forwarded-uri: /docs/a' -H 'x-original-uri: /docs/a' \
    -H 'x-forwarded-method: GET' -H "x-trace: $name-forged-uri"
  status_is "$name: a forged X-Forwarded-Uri: 401" 401
  never "$name: a forged X-Forwarded-Uri never arrives" "$name-forged-uri"
  call "$base/admin?/docs/a" -H "x-trace: $name-query"
  status_is "$name: a public path in the query: 401" 401
  never "$name: a public path in the query never arrives" "$name-query"
  call "$base/docs/../admin/users" --path-as-is -H "x-trace: $name-dots"
  if [ "$(cat "$work/status")" != 200 ]; then pass "$name: a dot segment is refused"; else fail "$name: a dot segment is refused"; fi
  never "$name: a dot segment never arrives at /admin" "\"path\": \"/docs/../admin"

  call "$base/docs/readme" -H "x-authgate-subject: mallory" -H "x-trace: $name-public"
  status_is "$name: a public path without a token" 200
  lacks "$name: a public path: no identity, forged or not" 'x-authgate-'
}

# A gRPC upstream for nginx's grpc_pass: the test peers' grpcio Echo server,
# whose answers carry the metadata it received.
grpc_upstream=127.0.0.1:9
if bash tests/peers/install.sh >"$work/peers-install.log" 2>&1 \
  && start echo '^listening ' target/peers-venv/bin/python tests/peers/python_echo.py \
    --events "$work/echo.events"; then
  grpc_upstream=$(sed -n 's/^listening //p' "$work/echo.out" | head -1)
else
  cp "$work/peers-install.log" "$work/last" 2>/dev/null
  fail "the gRPC upstream starts"
fi

# gRPC through nginx's grpc_pass at TARGET.
grpc_suite() {
  local c=(target/peers-venv/bin/python tests/peers/echo_client.py --target "$1")
  echo "== nginx grpc_pass"
  [ -x target/peers-venv/bin/python ] || { fail "nginx grpc_pass: no gRPC client"; return 0; }
  gcheck "nginx grpc: allowed" "${c[@]}" --token "$admin" --metadata x-authgate-subject=mallory \
    --metadata x-trace=grpc-allowed unary --message hi
  has "nginx grpc: the upstream is told the subject" '"x-authgate-subject": "authgate-dev@clients"'
  has "nginx grpc: ... the scopes" '"x-authgate-scopes": "admin"'
  lacks "nginx grpc: no forged subject arrives" 'mallory'
  lacks "nginx grpc: the token does not arrive" '"authorization"'
  gcheck "nginx grpc: no token: UNAUTHENTICATED" "${c[@]}" --metadata x-trace=grpc-none \
    --expect-code UNAUTHENTICATED unary --message hi
  if grep -qF grpc-none "$work/echo.events" 2>/dev/null; then fail "nginx grpc: no token never arrives"; else pass "nginx grpc: no token never arrives"; fi
  gcheck "nginx grpc: health is public" "${c[@]}" health
}
gcheck() { # NAME COMMAND...: passes when COMMAND exits 0; its output is in $work/last.
  local name=$1
  shift
  if timeout 30 "$@" >"$work/last" 2>&1; then pass "$name"; else fail "$name"; fi
}

nginx_port=$(free_port)
nginx_grpc_port=$(free_port)
sed -e "s/127.0.0.1:50051/$authz/" -e "s/127.0.0.1:8000/$upstream/" \
  -e "s/127.0.0.1:50062/$grpc_upstream/" -e "s/127.0.0.1:8082/127.0.0.1:$nginx_grpc_port/" \
  -e "s/127.0.0.1:8080/127.0.0.1:$nginx_port/" deploy/authz/nginx.conf >"$work/nginx/authz.conf"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 256; }
http {
    access_log $work/nginx/logs/access.log;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $work/nginx/authz.conf;
}
CONF
if nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' \
  >"$work/nginx.out" 2>"$work/nginx.err" &
then
  pids+=($!)
fi
if wait_port "$nginx_port"; then
  suite nginx "http://127.0.0.1:$nginx_port"
  grpc_suite "127.0.0.1:$nginx_grpc_port"
else
  cat "$work/nginx.err" >"$work/last"
  fail "nginx starts"
fi

caddy_port=$(free_port)
sed -e "s/127.0.0.1:50051/$authz/" -e "s/127.0.0.1:8000/$upstream/" \
  -e "s/127.0.0.1:8081/127.0.0.1:$caddy_port/" deploy/authz/Caddyfile >"$work/caddy/Caddyfile"
XDG_DATA_HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy" HOME="$work/caddy" \
  caddy run --adapter caddyfile --config "$work/caddy/Caddyfile" \
  >"$work/caddy.out" 2>"$work/caddy.err" &
pids+=($!)
if wait_port "$caddy_port"; then
  suite caddy "http://127.0.0.1:$caddy_port"
else
  cat "$work/caddy.err" >"$work/last"
  fail "caddy starts"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
