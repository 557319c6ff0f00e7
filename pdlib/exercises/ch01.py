"""Checkers for chapter 01, "Two personalities of one GPU". Every expected value is computed with
pdlib from the catalogs, never typed in."""
from __future__ import annotations

from .. import hardware as hw
from ..cost import CostModel
from . import Expected, exercise


@exercise("ch01.ridge_a100", "What is the ridge point of an A100-80GB, in FLOP per byte "
          "(dense BF16 peak FLOP/s divided by memory bandwidth in bytes/s)?")
def ridge_a100() -> Expected:
    g = hw.gpu("A100-80GB")
    return Expected(g.ridge, rel=0.02, unit="FLOP/B",
                    hint=f"ridge = peak FLOP/s ÷ bandwidth in bytes/s; read them with "
                         f"pdlib.hardware.gpu('A100-80GB').flops and .mem_bw "
                         f"({g.flops:.3g} FLOP/s and {g.mem_bw:.4g} bytes/s: TB/s is 1e12 bytes/s).")


@exercise("ch01.decode_ridge_batch", "At what decode batch size does Llama-3.1-8B turn "
          "compute-bound on one H100-SXM, at context 0, with both efficiencies set to 1.0?")
def decode_ridge_batch() -> Expected:
    cm = CostModel("Llama-3.1-8B", "H100-SXM", flops_efficiency=1.0, bw_efficiency=1.0)
    return Expected(cm.decode_ridge_batch(0), rel=0.10, unit="requests",
                    hint="each request adds ~2 FLOPs per weight, but the weights (2 bytes each) are "
                         "read once per step: the intensity of a batch-B decode is ≈ B FLOP/B, so B "
                         "lands near the ridge. CostModel(..., flops_efficiency=1.0, "
                         "bw_efficiency=1.0).decode_ridge_batch(0) gives the exact answer "
                         "(the LM head and activations shift it a little; ±10% accepted).")


@exercise("ch01.decode_70b_tp8", "How long (in seconds) does one decode step of Llama-3.1-70B "
          "take on 8×H100-SXM (tp=8, default efficiencies) at batch 1 with 1,000 cached tokens?")
def decode_70b_tp8() -> Expected:
    cm = CostModel("Llama-3.1-70B", "H100-SXM", tp=8)
    s = cm.decode(1, 1000)
    return Expected(s.time, rel=0.05, unit="s",
                    hint=f"each GPU streams 1/8 of the {cm.model.weight_bytes() / 1e9:.0f} GB of "
                         f"weights at η_W × {cm.gpu.mem_bw / 1e12:.2f} TB/s, then the step pays 2 "
                         "all-reduces per layer over NVLink: use "
                         "CostModel('Llama-3.1-70B', 'H100-SXM', tp=8).decode(1, 1000).time "
                         "(seconds, not milliseconds).")


@exercise("ch01.l40s_hbm", "Is the L40S an HBM card? Answer 'yes' or 'no'.")
def l40s_hbm() -> Expected:
    g, h = hw.gpu("L40S"), hw.gpu("H100-SXM")
    return Expected("yes" if g.is_hbm else "no", choices=("yes", "no"),
                    hint=f"look at pdlib.hardware.gpu('L40S').mem_type and .mem_bw: "
                         f"{g.mem_type} at {g.mem_bw / 1e9:,.0f} GB/s, against an H100's "
                         f"{h.mem_type} at {h.mem_bw / 1e9:,.0f} GB/s.")
