#!/usr/bin/env bash
# Instructions per operation of the validation path, counted by callgrind:
# repeatable where wall-clock time on a shared machine is not. Only the
# measured loop is counted, not the set-up (which generates keys).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (Debian: valgrind)"; exit 1; }
cargo build --release --quiet -p authgate-bench --bin instructions
bin=target/release/instructions
work=target/instructions
mkdir -p "$work"
count() { # op n
  valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$work/$1.$2.out" \
    "$bin" "$1" "$2" >/dev/null 2>"$work/$1.$2.log"
  sed -n 's/^summary: //p' "$work/$1.$2.out"
}
declare -A per
for op in bare_rs256 cold_rs256 jsonwebtoken_rs256 bare_ps256 cold_ps256 jsonwebtoken_ps256 cache_hit layer_hit metrics_layer_hit \
    gate_cold_rs256_1_issuer gate_cold_rs256_3_issuers cache_hit_3_issuers; do
  n=500; case "$op" in cache_hit*|layer_hit|metrics_layer_hit) n=20000 ;; esac
  per[$op]=$(( $(count "$op" "$n") / n ))
  printf '%-22s %12d instructions\n' "$op" "${per[$op]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo
echo "authgate cold RS256 / bare RSA-2048 verify: $(ratio "${per[cold_rs256]}" "${per[bare_rs256]}")"
echo "jsonwebtoken RS256 / bare RSA-2048 verify:  $(ratio "${per[jsonwebtoken_rs256]}" "${per[bare_rs256]}")"
echo "authgate cold PS256 / bare PS256 verify:    $(ratio "${per[cold_ps256]}" "${per[bare_ps256]}")"
echo "jsonwebtoken PS256 / bare PS256 verify:     $(ratio "${per[jsonwebtoken_ps256]}" "${per[bare_ps256]}")"
echo "cold RS256 / cache hit:                     $(ratio "${per[cold_rs256]}" "${per[cache_hit]}")"
echo "the gRPC metrics layer, per call:           $(( per[metrics_layer_hit] - per[layer_hit] )) instructions" \
  "($(ratio "${per[metrics_layer_hit]}" "${per[layer_hit]}") x the layered call it wraps; both build an http::Request)"
echo "gate cold RS256, three issuers / one issuer:  $(ratio "${per[gate_cold_rs256_3_issuers]}" "${per[gate_cold_rs256_1_issuer]}")"
echo "gate cold RS256, one issuer / bare verify:    $(ratio "${per[gate_cold_rs256_1_issuer]}" "${per[bare_rs256]}")"
echo "gate cold RS256, three issuers / bare verify: $(ratio "${per[gate_cold_rs256_3_issuers]}" "${per[bare_rs256]}")"
echo "cache hit, three issuers / one issuer:        $(ratio "${per[cache_hit_3_issuers]}" "${per[cache_hit]}")"
