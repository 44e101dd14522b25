#!/usr/bin/env bash
# The public API (default features: all of it) as api/authgate.txt lists
# it, one line per item: a change to the API fails here until the list is
# updated with it, so that every change to it shows in review.
#
#   bash tests/api/run.sh            # compare
#   bash tests/api/run.sh --update   # write the list anew
#
# rustdoc's JSON output is unstable; stable rustdoc gives it under
# RUSTC_BOOTSTRAP, which also changes how cargo fingerprints every crate:
# its own target directory keeps the main build's from being rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/api
RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p authgate --lib --target-dir "$target" \
  -- -Z unstable-options --output-format json
python3 tests/api/list.py "$target/doc/authgate.json" > "$target/authgate.txt"

if [ "${1:-}" = --update ]; then
  cp "$target/authgate.txt" api/authgate.txt
  echo "api/authgate.txt: $(grep -cv '^impl\|^auto' api/authgate.txt) public items"
elif ! diff -u api/authgate.txt "$target/authgate.txt"; then
  echo >&2
  echo "The public API changed (- listed in api/authgate.txt, + as built)." >&2
  echo "If that is meant, list it and commit the list with the change:" >&2
  echo "  bash tests/api/run.sh --update" >&2
  exit 1
fi
