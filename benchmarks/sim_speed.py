"""Simulator speed: wall seconds to simulate Poisson workloads end to end (metrics included).

10,000 and 100,000 requests at 4 req/s, 512 prompt / 128 output tokens, Llama-2-7B on one
A100-80GB: each colocated scheduler, and disaggregated 1 prefill + 1 decode GPU (IB-NDR-400G).
Goal: ≤ 1 s per configuration for 10k requests, ≤ 10 s for 100k. For scale: the issue quotes peer
simulators at 17–30 s for the 10k case on a 2-core machine (Vidur ~24 s, DistServe's simulator
17–19 s, SplitwiseSim 22–28 s).

Run: ``python benchmarks/sim_speed.py``; prints a table and writes benchmarks/results/sim_speed.json.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

import pdlib
from pdlib import sim
from pdlib.workload import poisson

MODEL, GPU = "Llama-2-7B", "A100-80GB"
CONFIGS = {
    "static": lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="static"),
    "continuous": lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="continuous"),
    "chunked": lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked"),
    "disaggregated 1P1D": lambda: sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU,
                                                    link="IB-NDR-400G"),
}


def bench(name: str, n: int) -> dict:
    w = poisson(rate=4.0, n=n, prompt=512, output=128, seed=0)
    t0 = time.perf_counter()
    res = sim.simulate(CONFIGS[name](), w)
    s = res.summary()                        # builds the per-request table: part of the cost
    wall = time.perf_counter() - t0
    return {"config": name, "requests": n, "wall_s": wall, "requests_per_s": n / wall,
            "finished": s["finished"], "ttft_p90_s": s["ttft_p90"], "tpot_p90_s": s["tpot_p90"],
            "tbt_p99_s": s["tbt_p99"], "timeline_rows": len(res.timeline),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    rows = [bench(name, n) for n in (10_000, 100_000) for name in CONFIGS]
    print(f"{'config':<20} {'requests':>9} {'wall s':>8} {'req/s simulated':>16} {'P90 TTFT ms':>12} "
          f"{'P99 TBT ms':>11} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['config']:<20} {r['requests']:>9,} {r['wall_s']:>8.2f} {r['requests_per_s']:>16,.0f} "
              f"{r['ttft_p90_s'] * 1e3:>12.1f} {r['tbt_p99_s'] * 1e3:>11.1f} {r['peak_rss_mib']:>13.0f}")
    out = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                       "numpy": np.__version__, "pdlib": pdlib.__version__, "device": "CPU (no GPU)"},
           "note": "peak_rss_mib is the process's peak resident memory so far (ru_maxrss), cumulative",
           "results": rows}
    path = Path(__file__).parent / "results" / "sim_speed.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
