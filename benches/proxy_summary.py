"""The table benches/proxy.sh prints, from its results.

usage: proxy_summary.py RESULTS_TSV IDLE_TSV HAVE_PROXY(yes|no)
"""

import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
idle = dict(line.split("\t") for line in open(sys.argv[2]).read().split("\n") if line)
have_proxy = sys.argv[3] == "yes"
names = {"direct": "direct to the upstream", "nginx": "nginx 1.22 grpc_pass (no auth)",
         "haproxy": "HAProxy 2.6 + jwt_verify", "authgate": "authgate proxy"}
scenarios = [("repeated", "repeated token (benches' loadgen)"),
             ("distinct", "distinct token per call (benches' loadgen, 5000 tokens)"),
             ("h2load_repeated", "repeated token (h2load)")]
med = {}
for r in rows:
    med.setdefault((r["row"], r["scenario"]), []).append(r)
def m(row, sc, field):
    runs = med.get((row, sc))
    return statistics.median(float(r[field]) for r in runs) if runs else None
for sc, title in scenarios:
    if ("direct", sc) not in med:
        continue
    print(f"\n{title}: medians of {len(med[('direct', sc)])} rounds")
    print(f"| {'row':<32} | {'calls/s':>8} | {'x direct':>8} | {'p50 us':>7} | {'p99 us':>7} | {'p99 added':>9} | {'OK / calls':>17} |")
    print(f"| {'-'*32} | {'-'*8}:| {'-'*8}:| {'-'*7}:| {'-'*7}:| {'-'*9}:| {'-'*17}:|")
    base, base99 = m("direct", sc, "calls_per_s"), m("direct", sc, "p99_us")
    for row in ["direct", "nginx", "haproxy", "authgate"]:
        if (row, sc) not in med:
            if row == "authgate" and not have_proxy:
                print(f"| {names[row]:<32} | {'to measure':>8} | {'':>8} | {'':>7} | {'':>7} | {'':>9} | {'':>17} |")
            continue
        rps, p50, p99 = m(row, sc, "calls_per_s"), m(row, sc, "p50_us"), m(row, sc, "p99_us")
        ok = sum(int(r["ok"]) for r in med[(row, sc)]); calls = sum(int(r["calls"]) for r in med[(row, sc)])
        print(f"| {names[row]:<32} | {rps:>8.0f} | {rps / base:>7.2f}x | {p50:>7.0f} | {p99:>7.0f} | {p99 - base99:>+9.0f} | {f'{ok}/{calls}':>17} |")
print("\nper-run figures (calls/s):")
for sc, _ in scenarios:
    for row in ["direct", "nginx", "haproxy", "authgate"]:
        if (row, sc) in med:
            print(f"  {sc:<16} {row:<9} " + " ".join(r["calls_per_s"] for r in med[(row, sc)]))
print("\nmemory per idle HTTP/2 connection (one call made on it, then idle), proxy's VmRSS delta / connections:")
for row in ["direct", "nginx", "haproxy", "authgate"]:
    if row in idle:
        print(f"  {names[row] if row != 'direct' else 'the upstream itself (direct)':<32} {idle[row]:>6} KiB")
    elif row == "authgate" and not have_proxy:
        print(f"  {names[row]:<32} to measure")
