#!/usr/bin/env bash
# The library guide's example, built as a user builds it. The guide is the
# crate's rustdoc, src/lib.rs's `//!` lines: its `[dependencies]` block under
# "# Using the library" and, under "## Guarding your own service", the
# Greeter's `main.rs` and the `build.rs`, copied into a new crate in a
# temporary directory with the service module and proto the snippet names
# (examples/greeter/greeter.rs, examples/proto/greeter.proto), and `cargo
# build`. Only `authgate`'s source changes: this checkout instead of crates.io.
# tests/it/docs.rs checks that the snippet is the compiled example's text;
# this checks that the guide's manifest builds it.
#
# Offline, from the crates the main build downloaded, at the versions
# authgate's Cargo.lock pins, in the shared target directory, so that only
# the new crate and what its features change are compiled. Ends with
# "N passed, M failed".
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0 failed=0
check() { # name, command...
  local name=$1; shift
  if "$@" >"$work/last.out" 2>&1; then
    passed=$((passed + 1)); echo "ok    $name"
  else
    failed=$((failed + 1)); echo "FAIL  $name"; tail -n 60 "$work/last.out"
  fi
}

# The guide's markdown: src/lib.rs's `//!` lines, as rustdoc reads them.
guide=$work/guide.md
sed -n 's|^//! \{0,1\}||p' src/lib.rs >"$guide"

# fence HEADING LANG TEXT: the body of the first ```LANG block after the
# line HEADING that holds TEXT; fails when there is none.
fence() {
  awk -v heading="$1" -v lang="$2" -v want="$3" '
    $0 == heading { after = 1; next }
    after && !inside && $0 == "```" lang { inside = 1; body = ""; next }
    inside && $0 == "```" {
      inside = 0
      if (index(body, want)) { printf "%s", body; found = 1; exit }
      next
    }
    inside { body = body $0 "\n" }
    END { exit !found }
  ' "$guide"
}

manifest=$(fence "# Using the library" toml "[dependencies]") ||
  { echo "src/lib.rs: no toml block with [dependencies] under '# Using the library'"; exit 1; }
main_rs=$(fence "## Guarding your own service" rust,ignore "mod greeter;") ||
  { echo "src/lib.rs: no Greeter main.rs under '## Guarding your own service'"; exit 1; }
build_rs=$(fence "## Guarding your own service" rust,ignore "protox::Compiler") ||
  { echo "src/lib.rs: no build.rs under '## Guarding your own service'"; exit 1; }

# The guide's `authgate = { version = "X", ... }` names this package's version.
same_version() {
  local package readme
  package=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
  readme=$(sed -n 's/^authgate = { *version = "\([^"]*\)".*/\1/p' <<<"$manifest")
  [ -n "$readme" ] || { echo "no 'authgate = { version = ... }' line in:"; echo "$manifest"; return 1; }
  case "$package" in
    "$readme" | "$readme".*) ;;
    *) echo "the guide: authgate $readme, Cargo.toml: $package"; return 1 ;;
  esac
}

# A new crate: the guide's manifest with authgate from this checkout, its
# main.rs and build.rs, and the service and proto it names.
user_crate() {
  local crate=$work/greeter-user
  mkdir -p "$crate/src" "$crate/proto"
  {
    printf '[package]\nname = "greeter-user"\nversion = "0.1.0"\nedition = "2024"\npublish = false\n\n'
    sed "s|^authgate = { *version = \"[^\"]*\"|authgate = { path = \"$root\"|" <<<"$manifest"
  } >"$crate/Cargo.toml"
  grep -q "^authgate = { path = \"$root\"" "$crate/Cargo.toml" ||
    { echo "authgate's line was not replaced:"; cat "$crate/Cargo.toml"; return 1; }
  printf '%s' "$main_rs" >"$crate/src/main.rs"
  printf '%s' "$build_rs" >"$crate/build.rs"
  cp examples/greeter/greeter.rs "$crate/src/greeter.rs"
  cp examples/proto/greeter.proto "$crate/proto/greeter.proto"
  # authgate's pins, so that the build is offline and tests what CI tested.
  cp Cargo.lock "$crate/Cargo.lock"
  cargo build --offline --manifest-path "$crate/Cargo.toml"
}

check "the library guide: the [dependencies] block's authgate is this package's version" same_version
check "the library guide: [dependencies], build.rs and the Greeter's main.rs build as a new crate" user_crate

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
