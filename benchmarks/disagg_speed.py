"""Disaggregated run: KV transfer efficiency per transport, layerwise overlap, TTFT/TPOT vs the
calibrated cost model — on the CPU (gloo and the shared-memory pool) or, with ``--device cuda``,
on GPUs (the CUDA-IPC shared pool on one GPU, plus NCCL between two; written for a GPU and
**not yet run on one**: no GPU was lent to the sessions that wrote it).

Transfer rates are the best of several (other processes can only add time), and each
measurement and its reference are treated alike: the same number of unmeasured warm-ups first,
then the best of ``BW_REPEATS`` per round. Model: 8 layers, 4 KV heads × 64 dims, float32 (16 KiB
of KV per token); two worker processes with 1 torch thread each.

1. Transfer efficiency, per prompt length and transport, whole-request mode (all layers and the
   24-byte first-token trailer in ONE message), ``1 + BW_REPEATS`` identical requests served one
   after the other in one run (the decode cache holds one request, so nothing overlaps; 1 new
   token, so no decode steps run), the first being the warm-up; ``ROUNDS`` rounds, each
   measuring every path and every reference in turn:

   * gloo (nccl alike, between two GPUs): KV bytes / transfer seconds (sender's clock, call → return) against
     :func:`pdlib.disagg.raw_bandwidth` — ONE plain ``dist.send`` of a contiguous tensor of the same
     bytes, 1 warm-up, best of ``BW_REPEATS`` — sent back to back from a cache-warm buffer (the
     strict ceiling), and as the KV path's transfers come: after an idle gap as long as the
     prefill (TCP restarts slow after idle) with both buffers out of the caches (the KV message
     was filled during the prefill, which streams the weights through the caches). The cold (first) transfer of each is reported too, and layerwise mode's
     bytes / Σ message seconds (8 messages instead of one).
   * shared: the same, against :func:`pdlib.disagg.raw_copy_bandwidth` — ONE ``copy_`` of the
     same bytes into shared memory (on a GPU: device memory) with the caches flushed first,
     best of ``1 + BW_REPEATS`` per round: the memcpy ceiling of a transport whose transfer is a copy into the peer's
     blocks plus a signal.
   Besides the best path over the best reference (``{tr}_efficiency``), each round's best path
   over the same round's best reference is kept (``{tr}_efficiency_per_round``) with its median
   (``{tr}_efficiency_paired_median``): the spread of those ratios is the measurement's noise.
2. Overlap: over an emulated link whose wire time equals the fastest prefill measured in part 1
   (``wire_over_prefill`` records the ratio actually met), the fraction of the transfer hidden
   behind prefill, ``1 − exposed / wire time``, layerwise vs whole-request, next to
   :func:`pdlib.kv_transfer_time`'s layerwise prediction (same denominator), for both transports.
3. TTFT and TPOT against the calibrated model :func:`pdlib.calibrate.calibrate_with_context`
   fitted on :func:`pdlib.calibrate.measure_steps` (prefills, decodes swept over context
   lengths, a batched decode), plus the decode worker's loop overhead per step measured on a
   separate probe run (64-token prompt, 48 tokens): TTFT ≈ prefill + exposed layerwise transfer
   on the measured raw link; TPOT ≈ mean over the request's decode steps of
   ``step_time([(1, L)])`` (which includes the loop overhead). Measured and predicted use the
   same statistic, the typical one: TTFT and TPOT are the median of ``REPEATS`` runs, and each
   calibration step is the median of ``CAL_REPEATS`` repeats, averaged over two passes, one
   before and one after the runs. (A best-of calibration against a mean of 15 decode steps
   would compare the machine's quietest moment with its usual load: on this shared 2-core
   machine the fastest and the median decode step differ by up to 20 %.) The best runs are
   kept in the results too.

Run: ``python benchmarks/disagg_speed.py [--device cuda]``; prints tables and writes
benchmarks/results/disagg_speed_<cpu|cuda>.json with the device and the machine's load named.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import pdlib
from pdlib import calibrate, disagg, engine
from pdlib.disagg.transport import EVICT_BYTES
from pdlib.hardware import Link

SHAPE = {"n_layers": 8, "hidden": 512, "n_heads": 8, "n_kv_heads": 4, "ffn": 1024, "vocab": 4000,
         "max_context": 4096}
PROMPTS = (256, 512, 1024, 2048)
NEW = 16
THREADS = 1
REPEATS = 5
CAL_REPEATS = 7
BW_REPEATS = 3
ROUNDS = 3
BLOCK = 16


def _prompt(n: int, vocab: int) -> list[int]:
    return [(31 * i + 7) % vocab for i in range(n)]


def _load() -> dict:
    la = os.getloadavg()
    return {"loadavg_1_5_15": [round(x, 2) for x in la], "cpu_count": os.cpu_count(),
            "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def serial(m, P: int, n: int, new: int = 1, **kw) -> list[disagg.RequestResult]:
    """``n`` identical ``P``-token requests served strictly one after the other (the decode
    cache has blocks for exactly one), all finished or RuntimeError."""
    blocks = -(-(P + new) // BLOCK)
    res = disagg.run(m, [_prompt(P, m.spec.vocab)] * n, new, dtype=torch.float32, checksums=False,
                     threads=THREADS, timeout=120, n_blocks=blocks, block_size=BLOCK, **kw)
    bad = [r for r in res if r.status != "finished"]
    if bad:
        raise RuntimeError(f"prompt {P}: {bad[0].status} ({bad[0].reason})")
    return res


def transports_for(device: str) -> list[str]:
    """The transports measured on ``device``: gloo and the shared pool on a CPU; on GPUs the
    CUDA-IPC shared pool, plus NCCL when there are two."""
    if device == "cpu":
        return ["gloo", "shared"]
    return (["nccl"] if torch.cuda.device_count() >= 2 else []) + ["shared"]


def bandwidth_rows(m, device: str = "cpu") -> list[dict]:
    """Per prompt length, ROUNDS rounds, each measuring every path and every reference once in
    turn (so a burst of load elsewhere hits them alike); each quantity is the best over all
    rounds of its measured (post-warm-up) transfers; a cold one is the median first transfer.

    Keys per transport ``tr``: ``{tr}_path`` / ``_path_cold`` / ``_layerwise`` (the KV path);
    ``{tr}_raw`` (gloo, nccl: one plain send of the same bytes, warm, back to back; shared: one
    copy of the same bytes with the caches flushed), ``{tr}_raw_cold`` and, for gloo and nccl,
    ``{tr}_raw_like_path`` (after an idle gap as long as the prefill, from a cache-cold buffer on a
    CPU); each ``…_bytes_per_s``, and ``{tr}_efficiency`` = path / raw etc."""
    rows = []
    trs = transports_for(device)
    print(f"\n{'prompt':>6} {'KV MB':>6} {'transport':>9} | {'path':>6} {'raw':>6} {'eff':>5} "
          f"{'paired median (range)':>21} | "
          f"{'raw alike':>9} {'eff':>5} | {'cold eff':>8} {'layerwise':>9}   (GB/s)")
    for P in PROMPTS:
        got: dict[str, list[float]] = {}
        add = lambda k, xs: got.setdefault(k, []).extend(xs)
        paired: dict[str, list[float]] = {tr: [] for tr in trs}     # per round: best path / best raw
        for _ in range(ROUNDS):
            round_path = {}
            for tr in trs:
                whole = serial(m, P, 1 + BW_REPEATS, transport=tr, layerwise=False)
                layer = serial(m, P, 1 + BW_REPEATS, transport=tr, layerwise=True)
                nbytes = whole[0].kv_bytes
                bw = [r.kv_bytes / r.transfer_seconds for r in whole]
                round_path[tr] = max(bw[1:])
                add(f"{tr}_path", bw[1:])
                add(f"{tr}_path_cold", bw[:1])
                add(f"{tr}_layerwise", [sum(w[2] for w in r.wire) / sum(w[1] - w[0] for w in r.wire)
                                        for r in layer[1:]])
                add("prefill_s", [r.prefill_seconds for r in whole])
            idle = min(got["prefill_s"])
            for tr in trs:
                if tr == "shared":
                    times = [nbytes / disagg.raw_copy_bandwidth(nbytes, repeats=1, warmup=0, threads=THREADS,
                                                                device=device) for _ in range(1 + BW_REPEATS)]
                else:
                    times = disagg.raw_bandwidth(nbytes, repeats=BW_REPEATS, warmup=1, all_times=True, backend=tr)
                    add(f"{tr}_raw_like_path", [nbytes / t for t in disagg.raw_bandwidth(
                        nbytes, repeats=BW_REPEATS, warmup=1, idle=idle, all_times=True, backend=tr,
                        evict_bytes=EVICT_BYTES if device == "cpu" else 0)[1:]])
                add(f"{tr}_raw", [nbytes / t for t in times[1:]])
                add(f"{tr}_raw_cold", [nbytes / times[0]])
                paired[tr].append(round_path[tr] / (nbytes / min(times[1:])))
        row = {"prompt": P, "kv_bytes": nbytes, "prefill_s": min(got["prefill_s"]), "raw_send_idle_s": idle,
               "measured_transfers_per_quantity": ROUNDS * BW_REPEATS}
        for k, xs in got.items():
            if k != "prefill_s":
                row[f"{k}_bytes_per_s"] = float(np.median(xs)) if k.endswith("cold") else max(xs)
        for tr in trs:
            b = lambda k: row[f"{tr}_{k}_bytes_per_s"]
            row[f"{tr}_efficiency"] = b("path") / b("raw")
            row[f"{tr}_cold_efficiency"] = b("path_cold") / b("raw_cold")
            row[f"{tr}_layerwise_efficiency"] = b("layerwise") / b("raw")
            row[f"{tr}_efficiency_per_round"] = paired[tr]
            row[f"{tr}_efficiency_paired_median"] = float(np.median(paired[tr]))
            alike = f"{tr}_raw_like_path_bytes_per_s" in row
            if alike:
                row[f"{tr}_efficiency_vs_like_path_raw"] = b("path") / b("raw_like_path")
            print(f"{P:>6} {nbytes / 1e6:>6.1f} {tr:>9} | {b('path') / 1e9:>6.2f} {b('raw') / 1e9:>6.2f} "
                  f"{row[f'{tr}_efficiency']:>5.2f} {row[f'{tr}_efficiency_paired_median']:>6.2f} "
                  f"({min(paired[tr]):.2f}-{max(paired[tr]):.2f}) | "
                  + (f"{b('raw_like_path') / 1e9:>9.2f} {row[f'{tr}_efficiency_vs_like_path_raw']:>5.2f}"
                     if alike else f"{'-':>9} {'-':>5}")
                  + f" | {row[f'{tr}_cold_efficiency']:>8.2f} {b('layerwise') / 1e9:>9.2f}")
        rows.append(row)
    return rows


def overlap_rows(m, spec, bw_rows, device: str = "cpu") -> list[dict]:
    rows = []
    print(f"\n{'prompt':>6} {'transport':>9} {'link MB/s':>9} {'prefill s':>9} {'hidden layerwise':>16} "
          f"{'hidden whole':>12} {'predicted':>9}")
    for row in bw_rows[1:3]:
        P = row["prompt"]
        bw = row["kv_bytes"] / row["prefill_s"]                 # wire time = the fastest prefill
        # hidden over the wire time, for the runs and for the prediction alike
        hid = lambda r: disagg.hidden_fraction(r.exposed_transfer, r.kv_bytes, bw)
        for tr in transports_for(device):
            lw = max(serial(m, P, 2, transport=tr, layerwise=True, link_bandwidth=bw)[1:], key=hid)
            wh = serial(m, P, 2, transport=tr, layerwise=False, link_bandwidth=bw)[1]
            link = Link("emulated", bw, 1e-9, "network", source="pdlib.disagg.EmulatedLink", measured=True)
            exposed = pdlib.kv_transfer_time(spec, P, link, dtype="fp32", mode="layerwise",
                                             prefill_time=lw.prefill_seconds)
            predicted = disagg.hidden_fraction(exposed, spec.kv_bytes(P, "fp32"), bw)
            rows.append({"prompt": P, "transport": tr, "link_bytes_per_s": bw, "prefill_s": lw.prefill_seconds,
                         "wire_s": lw.kv_bytes / bw, "wire_over_prefill": lw.kv_bytes / bw / lw.prefill_seconds,
                         "layerwise_transfer_s": lw.transfer_seconds, "layerwise_exposed_s": lw.exposed_transfer,
                         "whole_transfer_s": wh.transfer_seconds, "whole_exposed_s": wh.exposed_transfer,
                         "hidden_layerwise": hid(lw), "hidden_whole": hid(wh),
                         "hidden_predicted": predicted,
                         "ttft_layerwise_s": lw.ttft, "ttft_whole_s": wh.ttft})
            print(f"{P:>6} {tr:>9} {bw / 1e6:>9.1f} {lw.prefill_seconds:>9.3f} {hid(lw):>16.0%} "
                  f"{hid(wh):>12.0%} {predicted:>9.0%}")
    return rows


def timing_rows(m, spec, bw_rows, device: str = "cpu"):
    shapes = [[(P, 0)] for P in (64, 256, 1024)] + \
        calibrate.decode_context_sweep((16, 256, 512, 1024, 2048, 3072)) + [[(1, 512)] * 4]
    trs = transports_for(device)
    # calibration steps, on the device the workers use: one pass before and one after the
    # measured runs, each shape's median steps averaged over both (load elsewhere drifts;
    # bracketing the runs keeps the fit and the runs alike)
    m_dev = m if device == "cpu" else copy.deepcopy(m).to(device)
    first_pass = calibrate.measure_steps(m_dev, shapes, repeats=CAL_REPEATS, stat="median")
    # the decode worker's own cost per step, measured on probe runs (not on the runs predicted)
    probe = [serial(m, 64, 1, new=48, transport=tr)[0] for tr in trs for _ in range(REPEATS)]
    runs = {}
    for P in PROMPTS:
        for tr in trs:
            runs[P, tr] = [disagg.run(m, [_prompt(P, spec.vocab)], NEW, dtype=torch.float32, checksums=False,
                                      threads=THREADS, timeout=120, transport=tr)[0] for _ in range(REPEATS)]
            if any(r.status != "finished" for r in runs[P, tr]):
                raise RuntimeError(f"prompt {P}: {runs[P, tr][0].reason}")
    second_pass = calibrate.measure_steps(m_dev, shapes, repeats=CAL_REPEATS, stat="median")
    meas = [(items, (a + b) / 2) for (items, a), (_, b) in zip(first_pass, second_pass)]
    gpu = calibrate.device_as_gpu(device)
    base = pdlib.CostModel(spec, gpu, dtype="fp32")
    roof_only = calibrate.calibrate(base, meas)                  # the plain fit, for comparison
    fitted = calibrate.calibrate_with_context(base, meas)
    loop = float(np.median([r.tpot - np.mean(r.step_seconds) for r in probe]))
    model = fitted.with_(loop_overhead=max(0.0, loop))
    links = {tr: float(np.median([r[f"{tr}_raw_bytes_per_s"] for r in bw_rows])) for tr in trs}
    rows = []
    print(f"\n{'prompt':>6} {'transport':>9} {'TTFT s':>7} {'pred':>7} {'err':>5} {'TPOT ms':>8} {'pred':>6} "
          f"{'err':>5} {'plain fit':>9} {'engine step':>11} {'loop':>5}")
    for (P, tr), rs in runs.items():
        ttft = float(np.median([r.ttft for r in rs]))
        typical = sorted(rs, key=lambda r: r.tpot)[len(rs) // 2]       # the median run's TPOT
        link = Link(f"loopback-{tr}", links[tr], 1e-9, "network", source="measured above", measured=True)
        pre = model.prefill_time(P)
        ttft_p = pre + pdlib.kv_transfer_time(spec, P, link, dtype="fp32", mode="layerwise",
                                              prefill_time=pre)
        # the step making token k+2 feeds token k+1 with P + k tokens cached
        tpot_p = float(np.mean([model.decode_time(1, P + k) for k in range(NEW - 1)]))
        tpot_plain = float(np.mean([roof_only.decode(1, P + k).time for k in range(NEW - 1)]))
        e1, e2 = ttft / ttft_p - 1, typical.tpot / tpot_p - 1
        step = float(np.mean(typical.step_seconds))
        rows.append({"prompt": P, "transport": tr, "ttft_s": ttft, "ttft_pred_s": ttft_p, "ttft_rel_err": e1,
                     "tpot_s": typical.tpot, "tpot_pred_s": tpot_p, "tpot_rel_err": e2,
                     "tpot_pred_plain_fit_s": tpot_plain, "tpot_plain_fit_rel_err": typical.tpot / tpot_plain - 1,
                     "engine_step_s": step, "loop_overhead_s": typical.tpot - step,
                     "best_ttft_s": min(r.ttft for r in rs), "best_tpot_s": min(r.tpot for r in rs),
                     "statistic": "median of runs; calibration: median of repeats",
                     "tpot_all_runs_s": [r.tpot for r in rs], "ttft_all_runs_s": [r.ttft for r in rs],
                     "prefill_s": min(r.prefill_seconds for r in rs),
                     "exposed_transfer_s": min(r.exposed_transfer for r in rs)})
        print(f"{P:>6} {tr:>9} {ttft:>7.3f} {ttft_p:>7.3f} {e1:>+5.0%} {typical.tpot * 1e3:>8.2f} "
              f"{tpot_p * 1e3:>6.2f} {e2:>+5.0%} {typical.tpot / tpot_plain - 1:>+9.0%} "
              f"{step * 1e3:>11.2f} {(typical.tpot - step) * 1e3:>5.2f}")
    cal = {"flops_efficiency": model.cost_model.flops_efficiency,
           "bw_efficiency": model.cost_model.bw_efficiency, "overhead_s": model.cost_model.overhead,
           "context_seconds_per_token": model.context_seconds, "loop_overhead_s": model.loop_overhead,
           "plain_fit": {"flops_efficiency": roof_only.flops_efficiency,
                         "bw_efficiency": roof_only.bw_efficiency, "overhead_s": roof_only.overhead},
           "device_flops": gpu.flops, "device_bw": gpu.mem_bw,
           "steps": [{"items": list(map(list, it)), "seconds": s, "predicted_s": model.step_time(it) - model.loop_overhead}
                     for it, s in meas]}
    print(f"calibrated: η_F {model.cost_model.flops_efficiency:.3f}, η_W {model.cost_model.bw_efficiency:.3f}, "
          f"overhead {model.cost_model.overhead * 1e3:.2f} ms, context {model.context_seconds * 1e9:.0f} ns/token, "
          f"loop overhead {model.loop_overhead * 1e3:.2f} ms/step")
    return rows, cal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    device = ap.parse_args().device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    torch.set_num_threads(THREADS)
    engine.steady_allocator()                     # as the workers do (see pdlib.engine.allocator)
    spec = engine.tiny_spec(**SHAPE, name="bench-disagg")
    m = engine.load(spec, dtype=torch.float32, seed=0)
    kv_tok = spec.kv_bytes_per_token("fp32")
    start = _load()
    print(f"{spec.params / 1e6:.0f} M params, fp32, KV {kv_tok / 1024:.0f} KiB/token; {pdlib.device_info()}; "
          f"load average {start['loadavg_1_5_15']} on {start['cpu_count']} CPUs; transports "
          f"{transports_for(device)}")
    t0 = time.perf_counter()
    bw_rows = bandwidth_rows(m, device)
    ov_rows = overlap_rows(m, spec, bw_rows, device)
    t_rows, cal = timing_rows(m, spec, bw_rows, device)
    end = _load()
    if device == "cpu":
        named = "CPU (no GPU: the one-GPU CUDA-IPC and two-GPU NCCL paths are not measured here)"
    else:
        named = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    result = {"device": named, "device_info": pdlib.device_info(),
              "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "machine_load": {"start": start, "end": end},
              "note": "on a shared machine other people's jobs may run during the measurement "
                      "(see machine_load); transfer rates are a best of several, TTFT/TPOT medians",
              "torch_threads_per_worker": THREADS, "torch": torch.__version__,
              "transports": transports_for(device), "repeats": REPEATS, "cal_repeats": CAL_REPEATS,
              "bw_repeats": BW_REPEATS, "rounds": ROUNDS, "seconds": time.perf_counter() - t0,
              "model": {**SHAPE, "params": spec.params}, "dtype": "float32", "new_tokens": NEW,
              "calibrated": cal, "bandwidth": bw_rows, "overlap": ov_rows, "ttft_tpot": t_rows}
    out = Path(__file__).parent / "results" / f"disagg_speed_{device}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s; load average at the end {end['loadavg_1_5_15']})")


if __name__ == "__main__":
    main()
