#!/usr/bin/env bash
# Installs the test peers' tools into target/ (gitignored), from the pins in
# tests/peers/requirements.txt and tests/peers/package-lock.json:
#   target/peers-venv  Python: grpcio, grpcio-tools, reflection, health, fastapi,
#                      uvicorn, requests, PyJWT
#   target/peers-gen   Python stubs for proto/echo/v1/echo.proto (not committed)
#   target/peers-node  node_modules: @grpc/grpc-js, proto-loader, reflection,
#                      grpc-health-check (npm ci, scripts off)
# Idempotent: each part is redone only when its inputs changed (a stamp holds
# their hash). Needs python3 (with venv) and node + npm on PATH; PYTHON picks
# another interpreter.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
peers=tests/peers
venv=target/peers-venv
gen=target/peers-gen
node=target/peers-node
mkdir -p target

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; } # stamp hash

want=$(hash_of "$peers/requirements.txt")
if ! fresh "$venv/.peers-stamp" "$want" || [ ! -x "$venv/bin/python" ]; then
  echo "peers: installing Python packages into $venv"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$peers/requirements.txt"
  echo "$want" >"$venv/.peers-stamp"
fi

want=$(hash_of "$peers/proto/echo/v1/echo.proto" "$venv/.peers-stamp")
if ! fresh "$gen/.peers-stamp" "$want"; then
  echo "peers: generating Python stubs into $gen"
  rm -rf "$gen"
  mkdir -p "$gen"
  "$venv/bin/python" -m grpc_tools.protoc -I "$peers/proto" --python_out="$gen" \
    --pyi_out="$gen" --grpc_python_out="$gen" echo/v1/echo.proto
  echo "$want" >"$gen/.peers-stamp"
fi

want=$(hash_of "$peers/package.json" "$peers/package-lock.json")
if ! fresh "$node/.peers-stamp" "$want" || [ ! -d "$node/node_modules/@grpc/grpc-js" ]; then
  echo "peers: installing Node packages into $node"
  rm -rf "$node"
  mkdir -p "$node"
  cp "$peers/package.json" "$peers/package-lock.json" "$node/"
  # No install scripts: none of these packages needs one (protobufjs's only
  # checks versions), and npm 11 would ask for approval anyway.
  (cd "$node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" >"$node/.peers-stamp"
fi

echo "peers: python  $root/$venv/bin/python ($("$venv/bin/python" -c 'import grpc; print("grpcio", grpc.__version__)'))"
echo "peers: stubs   $root/$gen (PYTHONPATH or PEERS_GEN; the peers find it themselves)"
echo "peers: node    $root/$node/node_modules ($(node --version), @grpc/grpc-js $(node -p "require('$root/$node/node_modules/@grpc/grpc-js/package.json').version"))"
