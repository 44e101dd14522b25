#!/usr/bin/env bash
# The one port as a browser uses it: headless Chromium (Debian's, driven by
# playwright-core) loads a page from one origin and calls `authgate dev` on
# another with a real gRPC-Web client (@connectrpc/connect-web, the client
# generated from proto/authgate/v1/private.proto by protoc-gen-es) and with
# fetch: GetPrivate and GET / with and without a token from the origin that
# --cors-allow-origin names, and the same from origins it does not name, which
# the browser must block. Installs what it needs (tests/browser/install.sh:
# chromium with apt-get when missing, the pinned npm packages into
# target/browser-node). Ends with "N passed, M failed". DRIVE_DEBUG=1 also
# prints each request Chromium reports failed (with its CORS error).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bash tests/browser/install.sh >/dev/null
modules="$root/target/browser-node/node_modules"
cargo build --quiet --bin authgate
authgate="${CARGO_TARGET_DIR:-target}/debug/authgate"
work=target/browser-test
rm -rf "$work" && mkdir -p "$work/site"
# A copy: a build elsewhere in a shared target directory cannot swap it.
cp "$authgate" "$work/authgate"

# The page: the client generated from the proto (buf compiles it; no network
# needed), then client.ts bundled with it for the browser. Only authgate's
# own protos: proto/envoy-authz has its own import root (authz's).
export BUF_CACHE_DIR="$root/$work/buf-cache"
"$modules/.bin/buf" generate proto --path proto/authgate --template "{\"version\":\"v2\",\"plugins\":[{\"local\":\"$modules/.bin/protoc-gen-es\",\"out\":\"$work/gen\",\"opt\":[\"target=ts\"]}]}"
cp tests/browser/client.ts "$work/client.ts"
NODE_PATH="$modules" "$modules/.bin/esbuild" "$work/client.ts" --bundle --format=iife --target=chrome120 \
  --log-level=warning --outfile="$work/site/bundle.js"
cp tests/browser/index.html "$work/site/index.html"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
redact() { sed 's/eyJ[A-Za-z0-9._-]*/TOKEN/g'; }
wait_for() { # file, pattern, what
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$3 did not start:"; redact <"$1"; return 1
}

# Two origins serving the same page: the first is allowed, the second not (nor
# is the first port under the name localhost).
node tests/browser/serve.mjs "$work/site" >"$work/site.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do [ "$(grep -c '^site ' "$work/site.out" 2>/dev/null)" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c '^site ' "$work/site.out")" -ge 2 ] || { cat "$work/site.out"; echo "the page server did not start"; exit 1; }
allowed="http://$(sed -n 1p "$work/site.out" | cut -d' ' -f2)"
other="http://$(sed -n 2p "$work/site.out" | cut -d' ' -f2)"
# localhost is another origin than 127.0.0.1, even on the allowed page's port.
localhost="http://localhost:${allowed##*:}"

"$work/authgate" dev --listen 127.0.0.1:0 --issuer-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --cors-allow-origin "$allowed" >"$work/dev.out" 2>"$work/dev.err" &
pids+=($!)
wait_for "$work/dev.out" '^Ctrl-C' "authgate dev" || { redact <"$work/dev.err"; exit 1; }
field() { sed -n "s/^  $1 *//p" "$work/dev.out" | head -1; }
gate="http://$(field gRPC | cut -d' ' -f1)"
# The token goes through the environment, never argv or the output.
AUTHGATE_TOKEN=$(sed -n '/^A token for the dev client/{n;n;p}' "$work/dev.out")
EXPECT_SUBJECT="$(field 'client id')@clients"
EXPECT_SCOPES=$(sed -n 's/^A token for the dev client (valid [^,]*, scope \(.*\)):$/\1/p' "$work/dev.out")
[ -n "$AUTHGATE_TOKEN" ] && [ -n "$EXPECT_SCOPES" ] || { echo "no token or scopes in dev's output"; exit 1; }
export AUTHGATE_TOKEN EXPECT_SUBJECT EXPECT_SCOPES

# drive.mjs redacts what it prints itself; it stops Chromium when it ends.
BROWSER_NODE_MODULES="$modules" GATE="$gate" ALLOWED_SITE="$allowed" OTHER_SITES="$other $localhost" \
  node tests/browser/drive.mjs &
pids+=($!)
status=0
wait $! || status=$?
if [ "$status" -ne 0 ]; then
  echo "authgate dev's log:"
  redact <"$work/dev.err" | tail -20
fi
exit "$status"
