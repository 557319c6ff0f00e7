"""Out-of-sample errors of the calibrated cost model against published A100/H100 measurements.

For each published source (:func:`pdlib.calibrate.published_sources`) and GPU, the cost model's
terms are fitted on the source's "fit" rows only and tested on its "test" rows
(:mod:`pdlib.published` says which rows are which and why), then tested across sources: a model
fitted to one source predicting another source's rows. Each line reports the median and 90th
percentile |relative error| of the calibrated model and of the pure roofline (the default
``CostModel``: η_F 0.6, η_W 0.8, link all-reduce, no measured term) on the same rows, per phase.

Two splits: "interleaved" (what ``from_published`` fits on; every term seen in the fit part) and
"extrapolation" (fit on short prompts and small batches only, test on the rest: a stress test in
which attention efficiency and the per-cached-token cost are not seen by the fit).

A third record prices one step far from every fit row — Llama-3.1-70B at tp 4 decoding 64
requests of 2,048 cached tokens — with each end-to-end calibration, term by term, beside the pure
roofline: where a per-cached-token term took the per-request cost, this is where it shows.

No GPU is needed: the numbers are the fit's errors on published measurements.

Run: ``python benchmarks/calibration_validation.py``; prints a table and writes
benchmarks/results/calibration_validation.json.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import pdlib
from pdlib import published as pb

OUT = Path(__file__).resolve().parent / "results" / "calibration_validation.json"

#: The step priced far from the rows: (model, tp, batch, cached tokens per request).
FAR = ("Llama-3.1-70B", 4, 64, 2048)

#: (rows of source, on GPU) priced by (model source, fitted on GPU): cross-source tests
CROSS = [("splitwise", "A100-80GB", "vidur", "A100-80GB"),
         ("splitwise", "H100-SXM", "vidur", "H100-SXM"),
         ("vidur", "A100-80GB", "splitwise", "A100-80GB"),
         ("vidur", "H100-SXM", "splitwise", "H100-SXM"),
         ("sarathi", "A100-PCIe-80GB", "vidur", "A100-80GB"),
         ("sarathi", "A100-PCIe-80GB", "splitwise", "A100-80GB"),
         ("splitwise", "A100-80GB", "sarathi", "A100-PCIe-80GB")]


def _lines(df, **tags) -> list[dict]:
    out = []
    for (split, phase), g in df.groupby(["split", "phase"]):
        c, r = g.calibrated_err.abs(), g.roofline_err.abs()
        out.append({**tags, "split": split, "phase": phase, "rows": int(len(g)),
                    "calibrated_median": float(c.median()), "calibrated_p90": float(c.quantile(0.9)),
                    "roofline_median": float(r.median()), "roofline_p90": float(r.quantile(0.9)),
                    "calibrated_mean_signed": float(g.calibrated_err.mean())})
    return out


def main() -> None:
    t0 = time.perf_counter()
    lines, terms, identified = [], {}, {}
    for split in pb.SPLITS:
        for source, s in pb.SOURCES.items():
            for gpu in s.gpus:
                terms[f"{source}/{gpu}/{split}"] = pb.fitted_terms(source, gpu, split)
                identified[f"{source}/{gpu}/{split}"] = list(pb.identified_terms(source, gpu, split))
                df = pb.validate(source, gpu, split=split)
                lines += _lines(df, scheme=split, rows_of=source, model_of=source, gpu=gpu, model_gpu=gpu)
    for rows_of, gpu, model_of, model_gpu in CROSS:
        df = pb.validate(rows_of, gpu, model_source=model_of, model_gpu=model_gpu)
        if rows_of == "vidur":
            df = df[df.split == "test"]           # Vidur's fit rows set the terms splitwise holds
        df = df.assign(split="cross-source")
        lines += _lines(df, scheme="cross-source", rows_of=rows_of, model_of=model_of, gpu=gpu, model_gpu=model_gpu)
    model, tp, batch, ctx = FAR
    far = {}
    for source in ("splitwise", "sarathi"):
        for gpu in pb.SOURCES[source].gpus:
            cm = pb.from_published(model, gpu, tp=tp, source=source)
            st = cm.decode(batch, ctx)
            kv_ns = cm.kv_bytes_per_token / (cm.gpu.mem_bw * cm.bw_efficiency) * 1e9
            far[f"{source}/{gpu}"] = {
                "step": f"{model} tp {tp}, decode of {batch} × {ctx} cached tokens",
                "calibrated_ms": float(st.time) * 1e3,
                "roofline_ms": float(pdlib.CostModel(model, gpu, tp=tp).decode(batch, ctx).time) * 1e3,
                "breakdown_ms": {k: float(v) * 1e3 for k, v in st.breakdown.items()},
                "context_ns_per_token": cm.context_seconds * 1e9, "kv_read_ns_per_token": kv_ns,
                "item_us": cm.item_seconds * 1e6}
    wall = time.perf_counter() - t0

    hdr = (f"{'scheme':<13} {'rows of':<10} {'model of':<10} {'GPU':<15} {'split':<12} {'phase':<8} {'n':>4} "
           f"{'cal med':>8} {'cal p90':>8} {'roof med':>9} {'roof p90':>9}")
    print(hdr)
    print("-" * len(hdr))
    for x in lines:
        print(f"{x['scheme']:<13} {x['rows_of']:<10} {x['model_of']:<10} {x['gpu']:<15} {x['split']:<12} "
              f"{x['phase']:<8} {x['rows']:>4} {x['calibrated_median']:>8.1%} {x['calibrated_p90']:>8.1%} "
              f"{x['roofline_median']:>9.1%} {x['roofline_p90']:>9.1%}")
    print(f"\n{model} tp {tp}, decode of {batch} × {ctx} cached tokens (ms):")
    for k, v in far.items():
        b = v["breakdown_ms"]
        print(f"  {k:<26} calibrated {v['calibrated_ms']:6.1f} (per item {b['per_item']:5.1f}, per cached "
              f"token {b['context']:5.1f}); roofline {v['roofline_ms']:5.1f}")
    above = [x for x in lines if x["split"] != "fit" and x["calibrated_median"] > 0.2]
    out = {"machine": {"platform": platform.platform(), "node": platform.node(),
                       "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                       "python": sys.version.split()[0], "numpy": np.__version__, "pdlib": pdlib.__version__,
                       "device": "CPU (no GPU: the numbers are fit errors on published measurements)"},
           "wall_s": wall,
           "note": ("errors are |predicted − measured| / measured; 'fit' lines are in sample, 'test' and "
                    "'cross-source' lines out of sample; roofline = default CostModel (η_F 0.6, η_W 0.8)"),
           "sources": {k: {"citation": v.citation, "hardware": v.hardware, "terms": list(v.terms),
                           "held_from_vidur": list(v.held_terms), "dropped": pb.DROPPED[k]}
                       for k, v in pb.SOURCES.items()},
           "fitted_terms": terms, "identified_terms": identified, "far_from_the_rows": far,
           "results": lines,
           "out_of_sample_medians_above_20pct": above}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{len(lines)} lines in {wall:.1f} s; wrote {OUT}")


if __name__ == "__main__":
    main()
