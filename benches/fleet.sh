#!/usr/bin/env bash
# Three `authgate serve` replicas behind a balancer on loopback, under load
# from benches' own generator, through rolling restarts, a key rotation at
# the issuer and a replica killed with SIGKILL; prints calls by status per
# step and throughput through the balancer against one replica direct.
# Not part of .ci/run. The balancer is HAProxy (deploy/haproxy/haproxy.cfg)
# unless told otherwise:
#   benches/fleet.sh                  (STEP_SECONDS=10 for the steady steps)
#   benches/fleet.sh --balancer nginx nginx (deploy/nginx/authgate.conf: a
#                                     keepalive upstream, grpc_pass), in a
#                                     directory of its own under target/fleet
#   benches/fleet.sh --proxy          the replicas are `authgate proxy`, each in
#                                     front of an upstream of its own
#                                     (proxybench upstream), as sidecars run
#   --restarts 3 --restart-calls 1000000 (the defaults): three rolling
#                                     restarts that carry a million calls in
#                                     all, paced by the calls made; at 20,000
#                                     to 40,000 calls/s, a minute or two
# Any other flag goes to target/release/fleet (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
balancer=haproxy
previous=""
for arg in "$@"; do
  case "$arg" in
    --balancer=*) balancer="${arg#--balancer=}" ;;
  esac
  [ "$previous" = "--balancer" ] && balancer="$arg"
  previous="$arg"
done
case "$balancer" in
  haproxy|nginx) ;;
  *) echo "--balancer: haproxy or nginx, not $balancer" >&2; exit 2 ;;
esac
if ! command -v "$balancer" >/dev/null; then
  # Debian's package, used as a program here: the fleet runs it in a
  # directory of its own, not as the system service.
  echo "installing $balancer (Debian's $balancer package)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update >/dev/null && $sudo apt-get install -y "$balancer" >/dev/null
fi
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p authgate --bin authgate
cargo build --release --quiet -p authgate-bench --bin fleet --bin proxybench
"$target/release/fleet" --authgate "$target/release/authgate" \
  --proxybench "$target/release/proxybench" \
  --seconds "${STEP_SECONDS:-10}" "$@"
