"""Engine speed: decode tokens/s of pdlib.engine vs Hugging Face transformers' ``generate``.

Both run the same random Llama-shaped model (saved once with :func:`pdlib.engine.save` and loaded
by ``LlamaForCausalLM.from_pretrained``), greedy, at decode batch 1, 8 and 32 with 64-token
prompts. Decode time per step = (time of a run with ``1 + S`` new tokens − time of a run with 1
new token) / S, so prefill is left out of both.

On ``--device cuda`` (untested in the session that wrote it: no GPU there) it uses a ~1B model in
bf16/fp16 and also prints the decode step time against the weight-streaming floor
``weight_bytes / HBM bandwidth`` measured by :func:`pdlib.microbench.measure_roofline`.

Run: ``python benchmarks/engine_speed.py [--device cuda]``; prints a table and writes
benchmarks/results/engine_speed_<cpu|cuda>.json with the machine named.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import pdlib
from pdlib import engine

PROMPT, STEPS, BATCHES = 64, 16, (1, 8, 32)
SHAPES = {  # CPU: ~31 M parameters; CUDA: ~1.1 B parameters (Llama-3.2-1B-like)
    "cpu": dict(n_layers=8, hidden=512, n_heads=8, n_kv_heads=2, ffn=1408, vocab=8000),
    "cuda": dict(n_layers=16, hidden=2048, n_heads=32, n_kv_heads=8, ffn=8192, vocab=32000),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def ours_decode_step(m, batch: int, device: str) -> float:
    """Seconds per decode step of ``batch`` requests in pdlib.engine (median of STEPS steps)."""
    prompts = [[(7 * b + i) % m.spec.vocab for i in range(PROMPT)] for b in range(batch)]
    r = engine.Runner(m, n_blocks=batch * -(-(PROMPT + STEPS + 1) // 16))
    logits = r.step([(b, p) for b, p in enumerate(prompts)])
    toks = logits.argmax(-1).tolist()
    times = []
    for _ in range(STEPS):
        t = _timed(lambda: toks.__setitem__(slice(None), r.step(
            [(b, [toks[b]]) for b in range(batch)]).argmax(-1).tolist()), device)
        times.append(t)
    return sorted(times)[len(times) // 2]


def hf_decode_step(hf, vocab: int, batch: int, device: str) -> float:
    """Seconds per decode step of ``batch`` requests in transformers' generate (greedy, KV cache)."""
    ids = torch.tensor([[(7 * b + i) % vocab for i in range(PROMPT)] for b in range(batch)],
                       device=device)
    kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

    def run(n):
        with torch.inference_mode():
            hf.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
    run(2)                                                     # warm-up
    best_short = min(_timed(lambda: run(1), device) for _ in range(2))
    best_long = min(_timed(lambda: run(1 + STEPS), device) for _ in range(2))
    return max(best_long - best_short, 1e-9) / STEPS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    device = args.device
    import transformers
    dtype = torch.float32 if device == "cpu" else (
        torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    spec = engine.tiny_spec(**SHAPES[device], name=f"bench-{device}")
    m = engine.load(spec, dtype=dtype, device=device, seed=0)
    with tempfile.TemporaryDirectory() as d:
        engine.save(m, d)
        hf = transformers.LlamaForCausalLM.from_pretrained(d, dtype=dtype).to(device).eval()
    rows = []
    print(f"{spec.params / 1e6:.0f} M params, {str(dtype)[6:]}, {pdlib.device_info()}")
    print(f"{'batch':>5} {'pdlib tok/s':>12} {'HF tok/s':>10} {'speedup':>8}")
    for b in BATCHES:
        ours = ours_decode_step(m, b, device)
        theirs = hf_decode_step(hf, spec.vocab, b, device)
        rows.append({"batch": b, "pdlib_step_s": ours, "hf_step_s": theirs,
                     "pdlib_tokens_per_s": b / ours, "hf_tokens_per_s": b / theirs})
        print(f"{b:>5} {b / ours:>12.0f} {b / theirs:>10.0f} {theirs / ours:>7.2f}x")
    result = {"device": "CPU" if device == "cpu" else torch.cuda.get_device_name(),
              "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "torch": torch.__version__, "transformers": transformers.__version__,
              "model": {**SHAPES[device], "params": spec.params}, "dtype": str(dtype)[6:],
              "prompt_tokens": PROMPT, "decode_steps": STEPS, "rows": rows}
    if device == "cuda":
        from pdlib.microbench import measure_roofline
        bw = measure_roofline("cuda").peak_bw
        floor = spec.weight_bytes("bf16") / bw
        result["weight_stream_floor_s"] = floor
        result["measured_bw_bytes_per_s"] = bw
        for row in rows:
            row["step_over_floor"] = row["pdlib_step_s"] / floor
        print(f"weight-streaming floor {floor * 1e3:.2f} ms/step; batch-1 step "
              f"{rows[0]['pdlib_step_s'] * 1e3:.2f} ms ({rows[0]['step_over_floor']:.1f}x)")
    out = Path(__file__).parent / "results" / f"engine_speed_{device}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
