#!/usr/bin/env bash
# The seed's own client, unchanged (tests/peers/seed_client.py: requests.get
# with "Authorization: Bearer <token>"), and curl, against `authgate dev`'s
# one port: GET / answers the seed's JSON with a token, and refusals follow
# RFC 6750; then the curl command dev prints, pasted as it is. Installs the
# peers' venv (tests/peers/install.sh) when it is missing. Ends with
# "N passed, 0 failed".
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bash tests/peers/install.sh >/dev/null
python=target/peers-venv/bin/python
cargo build --quiet --bin authgate
authgate="${CARGO_TARGET_DIR:-target}/debug/authgate"
work=target/web-check
rm -rf "$work" && mkdir -p "$work"
# A copy: a build elsewhere in a shared target directory cannot swap it.
cp "$authgate" "$work/authgate"

"$work/authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 \
  --cors-allow-origin http://app.example:8080 >"$work/dev.out" 2>"$work/dev.err" &
dev=$!
trap 'kill $dev 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q '^Ctrl-C' "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Ctrl-C' "$work/dev.out" || { cat "$work/dev.err"; echo "authgate dev did not start"; exit 1; }
field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
addr=$(field gRPC | cut -d' ' -f1)
url="http://$addr/"
# The token goes through the environment, never argv or the output.
AUTHGATE_TOKEN=$(sed -n '/^A token for the dev client/{n;n;p}' "$work/dev.out")
export AUTHGATE_TOKEN

passed=0 failed=0
check() { # name, command...
  local name=$1; shift
  if "$@" >"$work/last.out" 2>&1; then
    passed=$((passed + 1)); echo "ok    $name"
  else
    failed=$((failed + 1)); echo "FAIL  $name"; sed 's/eyJ[A-Za-z0-9._-]*/TOKEN/g' "$work/last.out"
  fi
}
seed() { "$python" tests/peers/seed_client.py "$@"; }
output_is() { # expected first and second line, command...
  local status=$1 body=$2; shift 2
  local out; out=$("$@" || true)
  [ "$(sed -n 1p <<<"$out")" = "$status" ] && [ "$(sed -n 2p <<<"$out")" = "$body" ] ||
    { echo "got: $out"; return 1; }
}
curl_head() { # curl args...: the response head, one header per line
  curl -s -o /dev/null -D - "$@" | tr -d '\r'
}
has() { grep -qixF "$1" <<<"$2" || { echo "missing: $1"; echo "$2"; return 1; }; }

check "seed client with the dev token: 200, the seed's JSON" \
  output_is 200 '{"message": "This is private"}' seed "$url"
check "seed client without a token: 401" \
  env -u AUTHGATE_TOKEN "$python" tests/peers/seed_client.py --expect 401 "$url"
check "seed client with a forged token: 401 with its detail" \
  output_is 401 '{"detail": "token is malformed: expected three dot-separated parts"}' \
  env AUTHGATE_TOKEN=not-a-jwt "$python" tests/peers/seed_client.py "$url"
check "seed client on another path: 404" seed --expect 404 "${url}nowhere"

check "the body is byte for byte the seed's" \
  test "$(curl -s -H "Authorization: Bearer $AUTHGATE_TOKEN" "$url")" = '{"message": "This is private"}'
check "curl without a token: the bare RFC 6750 challenge" \
  has 'www-authenticate: Bearer realm="authgate"' "$(curl_head "$url")"
check "curl with a bad token: invalid_token" \
  has 'www-authenticate: Bearer realm="authgate", error="invalid_token", error_description="token is malformed: expected three dot-separated parts"' \
  "$(curl_head -H 'Authorization: Bearer x' "$url")"
check "curl preflight from the allowed origin: 200 without a token" \
  has 'access-control-allow-origin: http://app.example:8080' \
  "$(curl_head -X OPTIONS -H 'Origin: http://app.example:8080' -H 'Access-Control-Request-Method: POST' "$url")"
check "curl from another origin: no CORS headers" \
  bash -c '! grep -qi "^access-control-" <<<"$1"' _ \
  "$(curl_head -H 'Origin: http://evil.example' -H "Authorization: Bearer $AUTHGATE_TOKEN" "$url")"
check "gRPC-Web with curl: grpc-status 0 in the trailers frame" \
  bash -c 'printf "\0\0\0\0\0" | curl -s --http1.1 --data-binary @- -H "content-type: application/grpc-web+proto" \
    -H "authorization: Bearer $AUTHGATE_TOKEN" "$1authgate.v1.PrivateService/GetPrivate" | grep -qa "grpc-status:0"' _ "$url"

# The curl command dev prints, pasted as it is.
pasted=$(grep -m1 "^  curl " "$work/dev.out")
check "dev's curl command, pasted: the seed's JSON" \
  bash -c "test \"\$($pasted -s)\" = '{\"message\": \"This is private\"}'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
