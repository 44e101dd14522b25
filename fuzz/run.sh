#!/usr/bin/env bash
# Fuzzes both targets for SECONDS each (default 600) with cargo-fuzz on the
# stable toolchain, seeded from tests/fixtures/fuzz; prints executions and
# new corpus entries. Interesting inputs are kept as regression tests by
# copying them into tests/fixtures/fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${SECONDS_PER_TARGET:-600}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

mkdir -p corpus/authorize corpus/jwks
i=0
while read -r token; do
  [ -n "$token" ] && printf 'Bearer %s' "$token" >"corpus/authorize/seed-$((i++))"
done <../tests/fixtures/fuzz/tokens.txt
cp ../tests/fixtures/fuzz/jwks.json corpus/jwks/seed-jwks
cp ../tests/fixtures/fuzz/jwks-mixed.json corpus/jwks/seed-mixed
cp -r ../tests/fixtures/fuzz/regressions/authorize/. corpus/authorize/
cp -r ../tests/fixtures/fuzz/regressions/jwks/. corpus/jwks/

# A crash, a leak, an out-of-memory or a timeout makes cargo fuzz exit
# non-zero, and this script with it, after both targets have run.
failed=0
for target in authorize jwks; do
  echo "== $target for ${seconds}s"
  if ! cargo fuzz run "$target" --release -- -max_total_time="$seconds" -rss_limit_mb=1024 \
    -malloc_limit_mb=256 -timeout=5 -print_final_stats=1 >"fuzz-$target.log" 2>&1; then
    echo "!! $target failed; its input is under fuzz/artifacts/$target/, the log in fuzz/fuzz-$target.log:"
    tail -n 40 "fuzz-$target.log"
    failed=1
  fi
  grep -E '^(stat::|Done|==|INFO: seed|#[0-9]+ *DONE)' "fuzz-$target.log" || true
done
exit "$failed"
