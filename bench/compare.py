#!/usr/bin/python3
"""Ours against the best peer, row by row, from a run of bench/run.py.

    bench/compare.py [bench/results/latest.json]

For every workload and connection count: each of our servers, the peer
with the most requests per second (median over the rounds), their ratio
per round and its median (with the rounds we won), and both CPU times
per request (whole machine, median). The README's and docs/benchmarks.md's
summary tables are this output.
"""
import json
import os
import statistics
import sys

# Ours, and whom each is measured against: every peer doing the same job.
OURS = {
    "rust_wsgi": ["granian", "mod_wsgi", "uwsgi", "gunicorn"],
    "rust_pool": ["uwsgi", "gunicorn"],
    "rust_pool-php": ["php-fpm"],
    "rust_cgi": ["fcgiwrap"],
    "rust_asgi": ["uvicorn-alone", "granian-asgi-alone", "uvicorn", "granian-asgi"],
}


def median(values):
    return statistics.median(values) if values else None


def rows(run):
    for workload, by_conns in run["raw"].items():
        for conns, by_peer in by_conns.items():
            for ours, peers in OURS.items():
                mine = by_peer.get(ours)
                others = {p: by_peer[p] for p in peers if by_peer.get(p)}
                if not mine or not others:
                    continue
                best = max(others, key=lambda p: median([r["rps"] for r in others[p]]))
                rounds = list(zip(mine, others[best]))
                ratios = [a["rps"] / b["rps"] for a, b in rounds if b["rps"]]
                yield {
                    "workload": workload,
                    "conns": int(conns),
                    "ours": ours,
                    "best": best,
                    "ratio": median(ratios),
                    "won": sum(r > 1 for r in ratios),
                    "rounds": len(ratios),
                    "cpu_ours": median([r["cpu_us"] for r in mine if r.get("cpu_us")]),
                    "cpu_best": median([r["cpu_us"] for r in others[best] if r.get("cpu_us")]),
                }


def cpu(us):
    if us is None:
        return ""
    return "%.2f ms" % (us / 1000) if us >= 1000 else "%.0f µs" % us


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "results/latest.json")
    with open(path) as f:
        run = json.load(f)
    print("From the run of %s (%s).\n" % (run["date"], run["machine"]))
    print("| workload | conns | ours | best peer | ours / best (rounds won) | CPU per request: ours, best |")
    print("|---|---|---|---|---|---|")
    for r in rows(run):
        print("| %s | %d | %s | %s | %.2f (%d/%d) | %s, %s |" % (
            r["workload"], r["conns"], r["ours"], r["best"], r["ratio"], r["won"], r["rounds"],
            cpu(r["cpu_ours"]), cpu(r["cpu_best"])))


if __name__ == "__main__":
    main()
