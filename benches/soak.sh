#!/usr/bin/env bash
# Faults under load, then a soak, against a release `authgate serve`:
#   benches/soak.sh                 (faults at 15 s a step, a 10-minute soak)
#   SOAK_MINUTES=2 STEP_SECONDS=5 benches/soak.sh
# Not a test: a script whose figures go in benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p authgate --bin authgate
cargo build --release --quiet -p authgate-bench --bin soak
target/release/soak faults --step-seconds "${STEP_SECONDS:-15}"
target/release/soak soak --minutes "${SOAK_MINUTES:-10}"
