"""Disaggregated run on CPU: KV transfer bandwidth, layerwise overlap, TTFT/TPOT vs the cost model.

Three measurements with :func:`pdlib.disagg.run` (two worker processes, gloo over loopback,
1 torch thread each, float32, one request per run so nothing queues):

1. bandwidth: KV bytes / transfer seconds of a whole-request transfer (all layers in one message,
   then a 24-byte first-token message) against :func:`pdlib.disagg.raw_bandwidth` — best of 3 plain
   ``dist.send`` s of the same bytes after a warm-up (the KV path is a single cold transfer);
2. overlap: over an emulated link whose wire time equals the prefill time, the fraction of the
   transfer hidden behind prefill, ``1 − exposed / transfer``, layerwise vs whole-request, next to
   :func:`pdlib.kv_transfer_time`'s layerwise prediction;
3. TTFT and TPOT against a :class:`pdlib.CostModel` calibrated on this machine
   (:func:`pdlib.calibrate.calibrate` on :func:`pdlib.calibrate.measure_steps`):
   TTFT ≈ prefill step + exposed transfer, TPOT ≈ mean decode step at batch 1.

Run: ``python benchmarks/disagg_speed.py``; prints tables and writes
benchmarks/results/disagg_speed_cpu.json with the machine named.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

import pdlib
from pdlib import calibrate, disagg, engine
from pdlib.hardware import Link

SHAPE = {"n_layers": 8, "hidden": 512, "n_heads": 8, "n_kv_heads": 4, "ffn": 1024, "vocab": 4000, "max_context": 4096}
PROMPTS = (256, 512, 1024, 2048)
NEW = 16
THREADS = 1


def _prompt(n: int, vocab: int) -> list[int]:
    return [(31 * i + 7) % vocab for i in range(n)]


def one(m, P: int, **kw) -> disagg.RequestResult:
    """A run with one request of ``P`` prompt tokens (alone, so no queueing or contention)."""
    r, = disagg.run(m, [_prompt(P, m.spec.vocab)], NEW, dtype=torch.float32,
                    checksums=False, threads=THREADS, timeout=120, **kw)
    if r.status != "finished":
        raise RuntimeError(f"prompt {P}: {r.status} ({r.reason})")
    return r


def main() -> None:
    torch.set_num_threads(THREADS)
    spec = engine.tiny_spec(**SHAPE, name="bench-disagg")
    m = engine.load(spec, dtype=torch.float32, seed=0)
    kv_tok = spec.kv_bytes_per_token("fp32")
    print(f"{spec.params / 1e6:.0f} M params, fp32, KV {kv_tok / 1024:.0f} KiB/token; {pdlib.device_info()}")

    # 1. bandwidth of the KV path vs one raw send of the same bytes
    bw_rows = []
    print(f"\n{'prompt':>6} {'KV MB':>7} {'KV path GB/s':>13} {'raw send GB/s':>14} {'ratio':>6}")
    for P in PROMPTS:
        r = one(m, P, layerwise=False)
        ours = r.kv_bytes / r.transfer_seconds
        raw = disagg.raw_bandwidth(r.kv_bytes, repeats=3)
        bw_rows.append({"prompt": P, "kv_bytes": r.kv_bytes, "transfer_s": r.transfer_seconds,
                            "path_bytes_per_s": ours, "raw_bytes_per_s": raw, "ratio": ours / raw,
                            "prefill_s": r.prefill_seconds})
        print(f"{P:>6} {r.kv_bytes / 1e6:>7.1f} {ours / 1e9:>13.2f} {raw / 1e9:>14.2f} {ours / raw:>6.2f}")

    # 2. layerwise overlap over an emulated link as slow as the prefill is long
    ov_rows = []
    print(f"\n{'prompt':>6} {'link MB/s':>9} {'prefill s':>9} {'hidden layerwise':>16} "
          f"{'hidden whole':>12} {'predicted':>9}")
    for row in bw_rows[1:3]:
        P = row["prompt"]
        bw = row["kv_bytes"] / row["prefill_s"]
        lw = one(m, P, layerwise=True, link_bandwidth=bw)
        wh = one(m, P, layerwise=False, link_bandwidth=bw)
        link = Link("emulated", bw, 1e-9, "network", source="pdlib.disagg.EmulatedLink", measured=True)
        exposed = pdlib.kv_transfer_time(spec, P, link, dtype="fp32", mode="layerwise",
                                         prefill_time=lw.prefill_seconds)
        wire = spec.kv_bytes(P, "fp32") / bw
        hid = lambda r: max(0.0, 1 - r.exposed_transfer / r.transfer_seconds)
        ov_rows.append({"prompt": P, "link_bytes_per_s": bw, "prefill_s": lw.prefill_seconds,
                            "layerwise_transfer_s": lw.transfer_seconds, "layerwise_exposed_s": lw.exposed_transfer,
                            "whole_transfer_s": wh.transfer_seconds, "whole_exposed_s": wh.exposed_transfer,
                            "hidden_layerwise": hid(lw), "hidden_whole": hid(wh),
                            "hidden_predicted": 1 - exposed / wire,
                            "ttft_layerwise_s": lw.ttft, "ttft_whole_s": wh.ttft})
        print(f"{P:>6} {bw / 1e6:>9.1f} {lw.prefill_seconds:>9.3f} {hid(lw):>16.0%} {hid(wh):>12.0%} "
              f"{1 - exposed / wire:>9.0%}")

    # 3. TTFT / TPOT against the calibrated cost model
    shapes = [[(P, 0)] for P in (64, 256, 1024)] + [[(1, L)] for L in (256, 1024, 2048)] + \
             [[(1, 512)] * 4]
    meas = calibrate.measure_steps(m, shapes, repeats=3)
    gpu = calibrate.device_as_gpu("cpu")
    cm = calibrate.calibrate(pdlib.CostModel(spec, gpu, dtype="fp32"), meas)
    raw_link = Link("loopback-gloo", float(np.median([r["raw_bytes_per_s"] for r in bw_rows])), 1e-9,
                    "network", source="pdlib.disagg.raw_bandwidth on this machine", measured=True)
    t_rows = []
    print(f"\n{'prompt':>6} {'TTFT s':>8} {'pred':>8} {'err':>6} {'TPOT ms':>8} {'pred':>8} {'err':>6}")
    for P in PROMPTS:
        r = one(m, P, layerwise=True)
        pre = cm.prefill(P).time
        ttft_p = pre + pdlib.kv_transfer_time(spec, P, raw_link, dtype="fp32", mode="layerwise",
                                              prefill_time=pre)
        tpot_p = float(np.mean([cm.decode(1, P + k).time for k in range(1, NEW)]))
        e1, e2 = r.ttft / ttft_p - 1, r.tpot / tpot_p - 1
        t_rows.append({"prompt": P, "ttft_s": r.ttft, "ttft_pred_s": ttft_p, "ttft_rel_err": e1,
                           "tpot_s": r.tpot, "tpot_pred_s": tpot_p, "tpot_rel_err": e2,
                           "prefill_s": r.prefill_seconds, "exposed_transfer_s": r.exposed_transfer})
        print(f"{P:>6} {r.ttft:>8.3f} {ttft_p:>8.3f} {e1:>+6.0%} {r.tpot * 1e3:>8.2f} "
              f"{tpot_p * 1e3:>8.2f} {e2:>+6.0%}")

    result = {"device": "CPU", "platform": platform.platform(),
              "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "torch_threads_per_worker": THREADS, "torch": torch.__version__, "transport": "gloo",
              "model": {**SHAPE, "params": spec.params}, "dtype": "float32", "new_tokens": NEW,
              "calibrated": {"flops_efficiency": cm.flops_efficiency,
                             "bw_efficiency": cm.bw_efficiency, "overhead_s": cm.overhead,
                             "device_flops": gpu.flops, "device_bw": gpu.mem_bw},
              "bandwidth": bw_rows, "overlap": ov_rows, "ttft_tpot": t_rows}
    out = Path(__file__).parent / "results" / "disagg_speed_cpu.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
