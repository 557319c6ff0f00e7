"""Checkers for chapter 05, "PD disaggregation". Every expected value is computed with the
simulator (:mod:`pdlib.reproduce`), never typed in; simulations are cached so a notebook that
checks twice pays once."""
from __future__ import annotations

from functools import lru_cache

from .. import reproduce as rp
from . import Expected, exercise


@lru_cache(maxsize=None)
def _goodput(n_prefill: int, n_decode: int) -> tuple[float, float]:
    """(rate, per_gpu) in req/s of the chapter's setup: OPT-13B on A100-80GB, NVLink3, 512/64,
    DistServe's SLO, 1,000 requests, seed 0."""
    g = rp.xpyd_goodput(n_prefill, n_decode)
    return g.rate, g.per_gpu


@exercise("ch05.goodput_3p2d", "What is the goodput per GPU (req/s/GPU) of a 3P2D deployment in the "
          "chapter's DistServe setup (OPT-13B on A100-80GB, NVLink3, 512-token prompts, 64-token "
          "outputs, P90 TTFT ≤ 0.4 s and P90 TPOT ≤ 0.04 s)?")
def goodput_3p2d() -> Expected:
    return Expected(_goodput(3, 2)[1], rel=0.10, unit="req/s/GPU",
                    hint="pdlib.reproduce.xpyd_goodput(3, 2).per_gpu (a bisection: ±10% accepted). "
                         "Per GPU means the rate divided by all 5 GPUs, prefill and decode.")


@lru_cache(maxsize=None)
def _grow_answer() -> str:
    df = rp.pool_growth(10.0, prompt=1024, max_prefill=2, max_decode=2)
    att = {(r.n_prefill, r.n_decode): r.attainment for r in df.itertuples()}
    return "prefill" if att[2, 1] > att[1, 2] else "decode"


@exercise("ch05.grow_pool", "A 1P1D deployment (OPT-13B, A100-80GB, NVLink3) serves 10 req/s of "
          "512/64 requests within DistServe's SLO. Prompts double to 1,024 tokens at the same rate. "
          "You may add one GPU: to the prefill pool (2P1D) or the decode pool (1P2D)? Answer "
          "'prefill' or 'decode': the one with the higher SLO attainment.")
def grow_pool() -> Expected:
    return Expected(_grow_answer(), choices=("prefill", "decode"),
                    hint="simulate both with pdlib.reproduce.pool_growth(10.0, prompt=1024, "
                         "max_prefill=2, max_decode=2) and compare the attainment of 2P1D and 1P2D. "
                         "Which phase's work grows with the prompt, and which SLO was already tight?")


@exercise("ch05.usd_per_m_tokens", "At its goodput, what does a 2P1D deployment of A100-80GB GPUs "
          "(the chapter's DistServe setup) cost per million output tokens, in USD, with the "
          "catalog's on-demand price per GPU-hour (pdlib.hardware, one dated price list)?")
def usd_per_m_tokens() -> Expected:
    rate = _goodput(2, 1)[0]
    usd = rp.config_price("A100-80GB", "A100-80GB", 2, 1)
    return Expected(rp.cost_per_million_tokens(rate, 64, usd), rel=0.10, unit="USD",
                    hint=f"USD per hour ({usd:g} for three A100s) ÷ output tokens per hour "
                         "(3600 × goodput in req/s × 64 tokens) × 1e6; "
                         "pdlib.reproduce.cost_per_million_tokens does the arithmetic.")
