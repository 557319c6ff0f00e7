"""Checkers for chapter 09, "Head to head". Every expected value is computed with pdlib
(:mod:`pdlib.planner`, :mod:`pdlib.sim`), never typed in; simulations are cached so a notebook
that checks twice pays once."""
from __future__ import annotations

import math
from functools import lru_cache

from .. import planner
from .. import sim
from .. import workload as wl
from ..reproduce import config_name, xpyd_configs
from . import Expected, exercise

#: Exercise 1: a budget in USD per hour, and the unit it buys.
BUDGET_USD = 100.0
UNIT = "2P1D tp4/tp4 H100-SXM IB-NDR-400G"

#: Exercise 2: the request shape and TPOT target for :func:`pdlib.planner.pool_ratio`.
RATIO_SETUP = {"model": "Llama-3.1-8B", "gpu": "H100-SXM", "prompt": 4096, "output": 64,
               "slo": {"tpot": 0.02}, "max_instances": 4}

#: Exercise 3: a lone-ish stream of long prompts through 1P1D over two links.
LINK_SETUP = {"model": "Llama-2-7B", "gpu": "H100-SXM", "prompt": 8192, "output": 64, "n": 20,
              "rate": 0.5, "slow": "100GbE", "fast": "NVLink4"}


def _unit() -> planner.Candidate:
    for c in planner.head_to_head_candidates(conditional=False):
        if c.name == UNIT:
            return c
    raise LookupError(f"{UNIT!r} is not among chapter 09's candidates")


def deployment_gpus() -> int:
    """GPUs of the deployment that :data:`BUDGET_USD` buys in units of :data:`UNIT`."""
    u = _unit()
    return int(math.floor(BUDGET_USD / u.usd_per_hour)) * u.n_gpus


@exercise("ch09.budget_gpus", f"With a budget of {BUDGET_USD:g} USD per hour and the planner's unit "
          f"{UNIT} (catalog prices), how many GPUs does the deployment use?")
def budget_gpus() -> Expected:
    u = _unit()
    return Expected(deployment_gpus(), rel=0.0, unit="GPUs",
                    hint=f"the unit has {u.n_gpus} GPUs and costs {u.usd_per_hour:g} USD per hour; "
                         "replicas = floor(budget / unit price), GPUs = replicas × unit GPUs")


@lru_cache(maxsize=None)
def balanced_config() -> str:
    """The xPyD that :func:`pdlib.planner.pool_ratio` picks for :data:`RATIO_SETUP`."""
    s = RATIO_SETUP
    return config_name(*planner.pool_ratio(s["model"], s["gpu"], s["prompt"], s["output"], s["slo"],
                                           max_instances=s["max_instances"]))


@exercise("ch09.pool_ratio", "For Llama-3.1-8B on one H100-SXM per instance, 4,096-token prompts and "
          "64-token outputs under TPOT ≤ 20 ms, which xPyD of at most 4 instances balances the two "
          "pools (pdlib.planner.pool_ratio)? Answer like '2P1D'.")
def pool_ratio() -> Expected:
    choices = tuple(config_name(x, y) for x, y in xpyd_configs(RATIO_SETUP["max_instances"])
                    if math.gcd(x, y) == 1)
    return Expected(balanced_config(), choices=choices, hint="compare one prefill instance's req/s (1 / prefill time) with "
                    "one decode instance's (batch / (63 × step time) at the largest batch within 20 ms); "
                    "pdlib.planner.pool_ratio does it")


@lru_cache(maxsize=None)
def link_ttft_ratio() -> float:
    """Mean TTFT over the slow link ÷ mean TTFT over the fast link for :data:`LINK_SETUP`, the KV
    sent whole after the prefill (``transfer="whole"``, the simulator's default)."""
    s = LINK_SETUP
    w = wl.poisson(rate=s["rate"], n=s["n"], prompt=s["prompt"], output=s["output"], seed=0)
    ttft = {}
    for link in (s["slow"], s["fast"]):
        c = sim.disaggregated(model=s["model"], prefill_gpu=s["gpu"], decode_gpu=s["gpu"], link=link,
                              transfer="whole")
        ttft[link] = float(sim.simulate(c, w).requests.ttft.mean())
    return ttft[s["slow"]] / ttft[s["fast"]]


@exercise("ch09.link_ttft", "A 1P1D deployment of Llama-2-7B on H100-SXM serves 20 requests of 8,192 "
          "prompt and 64 output tokens at 0.5 req/s (Poisson, seed 0), each request's KV sent whole "
          "after its prefill (the simulator's default, as vLLM's NIXL connector does). How many "
          "times larger is the mean TTFT when the KV crosses 100 GbE instead of NVLink4?")
def link_ttft() -> Expected:
    return Expected(link_ttft_ratio(), rel=0.02, unit="×",
                    hint="simulate both with pdlib.sim.disaggregated(..., link=...) and compare "
                         "res.requests.ttft.mean(); Llama-2-7B has full multi-head attention, so its "
                         "KV is 0.5 MB per token")
