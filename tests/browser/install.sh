#!/usr/bin/env bash
# Installs what the browser end-to-end test (tests/browser/run.sh) needs:
#   /usr/bin/chromium     Debian's chromium (apt-get), when it is missing
#   target/browser-node   node_modules from the pins in tests/browser/package.json
#                         and package-lock.json: playwright-core (drives the
#                         system chromium; it downloads no browser), esbuild,
#                         @connectrpc/connect(-web), @bufbuild/protobuf,
#                         @bufbuild/protoc-gen-es and @bufbuild/buf (which
#                         compiles the .proto; its binary comes in an npm package)
# Idempotent: chromium is installed only when /usr/bin/chromium is missing; the
# Node packages are reinstalled only when the lock changed (a stamp holds its
# hash) or the install is incomplete. Needs node + npm on PATH, and root (or
# sudo) for apt-get.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
here=tests/browser
node=target/browser-node
mkdir -p target

if [ ! -x /usr/bin/chromium ]; then
  echo "browser: installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  # Package lists may be missing (a fresh image) or stale (a mirror that moved
  # on): update first when apt knows no chromium, and once more on a failure.
  if ! apt-cache show chromium >/dev/null 2>&1; then
    $sudo apt-get update -qq
  fi
  if ! $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  [ -x /usr/bin/chromium ] || { echo "browser: /usr/bin/chromium is still missing" >&2; exit 1; }
fi

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; } # stamp hash

# What a usable install has: the packages the test imports, and the platform
# binaries of esbuild and buf (optional dependencies, which npm skips quietly
# when they cannot be had).
complete() {
  local m=$node/node_modules
  [ -d "$m/playwright-core" ] && [ -d "$m/@connectrpc/connect-web" ] &&
    [ -x "$m/.bin/protoc-gen-es" ] && "$m/.bin/esbuild" --version >/dev/null 2>&1 &&
    "$m/.bin/buf" --version >/dev/null 2>&1
}

want=$(hash_of "$here/package.json" "$here/package-lock.json")
if ! fresh "$node/.browser-stamp" "$want" || ! complete; then
  echo "browser: installing Node packages into $node"
  rm -rf "$node"
  mkdir -p "$node"
  cp "$here/package.json" "$here/package-lock.json" "$node/"
  # No install scripts. esbuild's and buf's only pick their platform's binary,
  # which npm already installs as an optional dependency (@esbuild/linux-x64,
  # @bufbuild/buf-linux-x64), and their bin wrappers find it there;
  # playwright-core has none (we launch Debian's chromium, not a download).
  (cd "$node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  complete || { echo "browser: $node is incomplete after npm ci (esbuild or buf binary?)" >&2; exit 1; }
  echo "$want" >"$node/.browser-stamp"
fi

m=$node/node_modules
echo "browser: chromium $(/usr/bin/chromium --version 2>/dev/null | sed 's/^Chromium //' | cut -d' ' -f1)"
echo "browser: node     $root/$m ($(node --version), playwright-core $(node -p "require('$root/$m/playwright-core/package.json').version"), esbuild $("$m/.bin/esbuild" --version), buf $("$m/.bin/buf" --version))"
