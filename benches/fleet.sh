#!/usr/bin/env bash
# Three `authgate serve` replicas behind HAProxy (deploy/haproxy/haproxy.cfg)
# on loopback, under load from benches' own generator, through a rolling
# restart, a key rotation at the issuer and a replica killed with SIGKILL;
# prints calls by status per step and throughput through the balancer
# against one replica direct. About a minute and a half; not part of .ci/run.
#   benches/fleet.sh                  (STEP_SECONDS=10 for the steady steps)
#   benches/fleet.sh --proxy          the replicas are `authgate proxy`, each in
#                                     front of an upstream of its own
#                                     (proxybench upstream), as sidecars run
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v haproxy >/dev/null; then
  echo "installing HAProxy (Debian's haproxy package)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update >/dev/null && $sudo apt-get install -y haproxy >/dev/null
fi
cargo build --release --quiet -p authgate --bin authgate
cargo build --release --quiet -p authgate-bench --bin fleet --bin proxybench
target/release/fleet --seconds "${STEP_SECONDS:-10}" "$@"
