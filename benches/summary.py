#!/usr/bin/env python3
"""Prints criterion's latest estimates (median, ns) and the ratios the
benches/README.md reports, from target/criterion/*/*/new/estimates.json."""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
est = {}
for f in sorted(root.glob("*/*/new/estimates.json")):
    group, name = f.parts[-4], f.parts[-3]
    est[f"{group}/{name}"] = json.loads(f.read_text())["median"]["point_estimate"]


def show(ns):
    return f"{ns / 1000:8.2f} us" if ns >= 1000 else f"{ns:8.0f} ns"


for key, ns in est.items():
    print(f"{key:40} {show(ns)}")
print()
for alg in ["RS256", "PS256", "ES256", "EdDSA"]:
    g = lambda n: est.get(f"{alg}/{n}")
    if g("authgate_cold") and g("bare_parsed"):
        print(f"{alg}: authgate cold / bare verify = {g('authgate_cold') / g('bare_parsed'):.2f}; "
              f"jsonwebtoken decode / bare verify = {g('jsonwebtoken_decode') / g('bare_parsed'):.2f}; "
              f"rust_crypto / aws_lc verify = {g('jsonwebtoken_verify_rust_crypto') / g('jsonwebtoken_verify_aws_lc'):.2f}")
hit, cold = est.get("gate/cache_hit"), est.get("RS256/authgate_cold")
if hit and cold:
    print(f"cache hit is {cold / hit:.0f}x cheaper than a cold RS256 check")
call_hit, call_cold = est.get("gate/call_hit"), est.get("gate/call_cold_rs256")
if call_hit and call_cold:
    print(f"whole interceptor call: hit {show(call_hit).strip()}, cold RS256 {show(call_cold).strip()}")
