#!/usr/bin/env bash
# Other-language clients against a running `authgate dev`: grpcurl through
# reflection and a Python client generated from the proto with grpcio-tools.
# Installs what it needs into target/interop-venv; .ci/run calls it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv=target/interop-venv
work=target/interop
mkdir -p "$work"

if [ ! -x "$venv/bin/grpcurl" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi
export PATH="$root/$venv/bin:$PATH"

cargo build --quiet --bin authgate
authgate=target/debug/authgate
secret="interop-$RANDOM$RANDOM"
"$authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 --client-secret "$secret" \
  --grant-scope other --sample-tokens "$work/samples.txt" >"$work/dev.out" 2>"$work/dev.err" &
dev=$!
trap 'kill $dev 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q '^Ctrl-C' "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Ctrl-C' "$work/dev.out" || { cat "$work/dev.err"; echo "authgate dev did not start"; exit 1; }

field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
issuer=$(field issuer)
audience=$(field audience)
addr=$(field gRPC | cut -d' ' -f1)
token=$(sed -n '/^A token/{n;n;p}' "$work/dev.out")
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

echo "== grpcurl $(grpcurl -version 2>&1) against $addr"
out=$(grpcurl -plaintext "$addr" list)
for service in authgate.v1.PrivateService grpc.health.v1.Health; do
  grep -qx "$service" <<<"$out" || fail "list lacks $service: $out"
done
pass "list, without a token"
grpcurl -plaintext "$addr" describe authgate.v1.PrivateService | grep -q 'rpc GetPrivate' \
  || fail "describe PrivateService"
grpcurl -plaintext "$addr" describe authgate.v1.GetPrivateResponse | grep -q 'repeated string scopes = 3' \
  || fail "describe GetPrivateResponse"
pass "describe, without a token"
grpcurl -plaintext "$addr" grpc.health.v1.Health/Check | grep -q SERVING || fail "health"
pass "health, without a token"

out=$(grpcurl -plaintext -H "authorization: Bearer $token" "$addr" authgate.v1.PrivateService/GetPrivate)
grep -q '"message": "This is private"' <<<"$out" || fail "GetPrivate: $out"
grep -q '"subject": "authgate-dev@clients"' <<<"$out" || fail "GetPrivate subject: $out"
pass "GetPrivate with -H 'authorization: Bearer ...'"
out=$(grpcurl -plaintext -H "authorization: bearer $token" "$addr" authgate.v1.PrivateService/GetPrivate)
grep -q 'This is private' <<<"$out" || fail "lower-case scheme: $out"
pass "GetPrivate with a lower-case scheme"

expect_error() { # name code message-part grpcurl-args...
  local name=$1 code=$2 says=$3; shift 3
  local out rc=0
  out=$(grpcurl -plaintext "$@" "$addr" authgate.v1.PrivateService/GetPrivate 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "$name: grpcurl succeeded"
  grep -q "Code: $code" <<<"$out" || fail "$name: want $code, got: $out"
  grep -qF "$says" <<<"$out" || fail "$name: message lacks '$says': $out"
  pass "$name -> $code"
}
expect_error "no token" Unauthenticated "missing authorization metadata"
expect_error "a bad token" Unauthenticated "token signature is invalid" -H "authorization: Bearer ${token%????}AAAA"
expect_error "not a JWT" Unauthenticated "token is malformed" -H "authorization: Bearer nonsense"
expect_error "wrong scheme" Unauthenticated "not \`Bearer <token>\`" -H "authorization: Basic $token"

# Every token shape issuers mint (authgate dev --sample-tokens writes them):
# scp as Okta and Azure AD write it, scope as an array, RFC 9864's Ed25519,
# a kid naming an RSA and an EC key, and each access-token typ.
sample() { sed -n "s|^$1 ||p" "$work/samples.txt"; }
for shape in scp-array scp-string scope-array alg-ed25519 kid-shared-es256 \
  typ-absent typ-at+jwt typ-application/at+jwt; do
  out=$(grpcurl -plaintext -H "authorization: Bearer $(sample "$shape")" "$addr" \
    authgate.v1.PrivateService/GetPrivate 2>&1) || fail "$shape refused: $out"
  grep -q '"read:private"' <<<"$out" || fail "$shape: scopes: $out"
  pass "GetPrivate with a token of shape $shape"
done
expect_error "typ dpop+jwt" Unauthenticated "token type (\`typ\`) is not accepted" \
  -H "authorization: Bearer $(sample typ-dpop+jwt-refused)"
expect_error "scp without the scope" PermissionDenied "missing required scope \`read:private\`" \
  -H "authorization: Bearer $(sample scp-without-the-scope-refused)"

echo "== Python client generated with grpcio-tools"
rm -rf "$work/py" && mkdir -p "$work/py"
python3() { "$root/$venv/bin/python3" "$@"; }
python3 -m grpc_tools.protoc -I proto --python_out="$work/py" --grpc_python_out="$work/py" \
  proto/authgate/v1/private.proto
unscoped=$(AUTHGATE_CLIENT_SECRET="$secret" "$authgate" token --issuer "$issuer" \
  --audience "$audience" --client-id authgate-dev --scope other --no-cache)
PYTHONPATH="$work/py" python3 tests/interop/client.py "$addr" "$token" "$unscoped"

echo "interop: all passed"
