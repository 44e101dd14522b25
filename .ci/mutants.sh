#!/usr/bin/env bash
# Mutation testing with cargo-mutants: each mutant is one small change to the
# code (a comparison moved by one, an operator swapped, a function body
# replaced by a constant); a mutant every test still passes with is a check no
# test verifies. Scoped to the request path and the key handling, each file
# with the tests that exercise it; not part of .ci/run, for it takes hours.
#
#   .ci/mutants.sh                    every file below, one after another
#   .ci/mutants.sh cache validate     only these (names below)
#
# Results: mutants.out/<name>/mutants.out/{caught,missed,timeout,unviable}.txt,
# and a table of them all at the end, as CONTRIBUTING.md shows it. Mutants that
# change nothing observable are listed, each with its reason, in
# .cargo/mutants.toml and not run; the table counts them as equivalent.
# Exits 2 when a mutant was missed.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if [ "$(cargo mutants --version 2>/dev/null)" != "cargo-mutants $version" ]; then
  cargo install cargo-mutants --locked --version "$version"
fi

# The copies cargo-mutants builds share one target directory of their own, so
# the dependencies are built once; without debug info, each mutant links in
# seconds less.
export CARGO_TARGET_DIR="$PWD/target/mutants"
export CARGO_PROFILE_DEV_DEBUG=false
export CARGO_PROFILE_TEST_DEBUG=false
# A mutant that leaves a test waiting for an event fails it after 10 s rather
# than the usual 60, before cargo-mutants' own timeout would stop it.
export AUTHGATE_TEST_PATIENCE_SECS=10

# name, its files (comma-separated), then the test-name filters: unit tests
# and tests/it alike. The exhaustive single-character substitution test
# (seconds per run, and the random mutations test covers the same ground) is
# skipped throughout.
targets=(
  "validate src/gate/validate/mod.rs,src/gate/validate/compact.rs,src/gate/validate/header.rs,src/gate/validate/json.rs,src/gate/validate/claims.rs,src/gate/validate/peek.rs,src/gate/validate/principal.rs gate:: cache:: scopes:: issuers:: shapes:: differential:: fuzz::"
  "keys src/keys/mod.rs,src/keys/algorithm.rs,src/keys/jwk.rs,src/keys/key.rs,src/keys/set.rs,src/keys/store.rs keys:: refresh:: gate:: cache:: differential:: fuzz::"
  "gate src/gate/check.rs,src/gate/bearer.rs,src/gate/issuers.rs,src/gate/policy.rs,src/gate/stats.rs,src/gate/layer.rs,src/gate/interceptor.rs,src/gate/expiry.rs gate:: scopes:: server:: issuers:: shapes:: streams:: metrics:: fuzz:: refresh::an_empty_set refresh::a_set_of_only"
  "cache src/gate/cache.rs cache gate::"
  "refresher src/keys/refresher.rs keys:: refresh:: issuers:: metrics:: server::health traps::serve_"
  "net src/net.rs net:: refresh:: client:: cli::"
  "proxy src/proxy/path.rs,src/proxy/identity.rs,src/proxy/forward.rs proxy::"
)

wanted=("$@")
for name in "${wanted[@]}"; do
  grep -q "^  \"$name " "$0" || { echo "no target named $name" >&2; exit 64; }
done
count() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
table="| files | mutants | caught | missed | equivalent | timeout | unviable |
|---|---:|---:|---:|---:|---:|---:|"
missed_any=0
for target in "${targets[@]}"; do
  read -r name files filters <<<"$target"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then
    continue
  fi
  file_args=()
  IFS=, read -r -a file_list <<<"$files"
  for file in "${file_list[@]}"; do file_args+=(--file "$file"); done
  echo "== $files (tests: $filters)"
  mkdir -p "mutants.out/$name"
  # cargo-mutants exits 2 when mutants were missed and 3 on timeouts, which
  # the summary reports; anything else (a failing baseline) stops the script.
  status=0
  # shellcheck disable=SC2086 # the filters are words
  cargo mutants --jobs 1 "${file_args[@]}" --output "mutants.out/$name" \
    --cargo-arg=--lib --cargo-arg=--test=it \
    -- -- $filters --skip no_single_character_substitution || status=$?
  case $status in 0 | 2 | 3) ;; *) exit "$status" ;; esac
  out="mutants.out/$name/mutants.out"
  # The mutants .cargo/mutants.toml excludes: listed without it, not with it.
  all=$(cargo mutants --list --no-config "${file_args[@]}" | wc -l)
  run=$(cargo mutants --list "${file_args[@]}" | wc -l)
  caught=$(count "$out/caught.txt") missed=$(count "$out/missed.txt")
  timeout=$(count "$out/timeout.txt") unviable=$(count "$out/unviable.txt")
  [ "$missed" -eq 0 ] || missed_any=1
  line="| $name | $all | $caught | $missed | $((all - run)) | $timeout | $unviable |"
  echo "$line"
  table+=$'\n'"$line"
done
echo
echo "$table"
exit $((missed_any * 2))
