"""Checkers for chapter 03, "Continuous batching and head-of-line blocking". Every expected value
is computed with pdlib (cost model or simulator), never typed in."""
from __future__ import annotations

import numpy as np

from .. import sim
from .. import workload as wl
from . import Expected, exercise

#: The chapter's head-of-line scenario: ``n`` requests (prompt, output tokens) arrive at t = 0 and
#: decode; at ``at`` seconds one long prompt arrives (long_prompt, long_output tokens).
HOL = dict(n=32, prompt=512, output=400, long_prompt=10_000, long_output=16, at=2.0)


def hol_workload(n: int = HOL["n"], prompt: int = HOL["prompt"], output: int = HOL["output"],
                 long_prompt: int = HOL["long_prompt"], long_output: int = HOL["long_output"],
                 at: float = HOL["at"]) -> wl.Workload:
    """``n`` requests arriving at 0 s followed by one ``long_prompt``-token request at ``at``
    seconds (the long one is the last row, id ``n``)."""
    return wl.Workload(arrival=np.r_[np.zeros(n), at], prompt=np.r_[np.full(n, prompt), long_prompt],
                       output=np.r_[np.full(n, output), long_output])


@exercise("ch03.stall_h100", "Llama-3.1-8B runs on one H100-SXM with continuous batching "
          "(prefill priority). 32 requests (512-token prompts, 400 output tokens) arrive at t = 0 "
          "and are decoding when a "
          "10,000-token prompt arrives at t = 2 s. How long, in seconds, is the largest gap "
          "between two consecutive tokens of one of the 32 running requests?")
def stall_h100() -> Expected:
    cluster = sim.colocated(model="Llama-3.1-8B", gpu="H100-SXM", scheduler="continuous")
    res = sim.simulate(cluster, hol_workload())
    prefill = cluster.cost.prefill(HOL["long_prompt"]).time
    return Expected(float(res.requests["max_tbt"].iloc[0]), rel=0.05, unit="s",
                    hint=f"the running requests wait for the whole prefill step, then for the "
                         f"next decode step: CostModel('Llama-3.1-8B', 'H100-SXM')"
                         f".prefill(10_000).time is {prefill:.3g} s, plus one decode step of the 32 "
                         "requests and the long one (CostModel.step). Or simulate the scenario "
                         "and read requests['max_tbt'].")


@exercise("ch03.tpot_running", "In the chapter's head-of-line scenario (Llama-3.1-8B on one "
          "A100-80GB, continuous batching, 32 requests of 512 + 400 tokens at t = 0, a "
          "10,000-token prompt at t = 2 s), what is the TPOT of request 0, in seconds? Compute it "
          "from res.token_times(0) with the definition.")
def tpot_running() -> Expected:
    res = sim.simulate(sim.colocated(model="Llama-3.1-8B", gpu="A100-80GB", scheduler="continuous"),
                       hol_workload())
    t = res.token_times(0)
    return Expected(float((t[-1] - t[0]) / (len(t) - 1)), rel=0.01, unit="s",
                    hint="TPOT = (t_O − t_1) / (O − 1): the time from the first to the last "
                         "token, divided by the number of gaps (not by the number of tokens). "
                         "The stall is one of those gaps.")


def chat_workload(rate: float, n: int = 1000, seed: int = 0) -> wl.Workload:
    """The chapter's chat workload: ``n`` Poisson arrivals at ``rate`` req/s, lognormal prompts
    (median 512, P90 2,048, at most 8,192 tokens) and outputs (median 128, P90 512, at most 2,048)."""
    return wl.poisson(rate=rate, n=n, prompt=wl.lognormal(512, 2048, max=8192),
                      output=wl.lognormal(128, 512, max=2048), seed=seed)


@exercise("ch03.tpot_winner", "On the chapter's chat workload at 2 req/s (1,000 Poisson "
          "requests, seed 0; lognormal prompts of median 512 and P90 2,048 tokens, at most 8,192; "
          "outputs of median 128 and P90 512, at most 2,048), Llama-3.1-8B on one A100-80GB: which "
          "scheduler has the lower P99 TPOT, 'static' or 'continuous'?")
def tpot_winner() -> Expected:
    p99 = {}
    for name in ("static", "continuous"):
        cluster = sim.colocated(model="Llama-3.1-8B", gpu="A100-80GB", scheduler=name)
        p99[name] = sim.simulate(cluster, chat_workload(2.0)).summary()["tpot_p99"]
    best = min(p99, key=p99.get)
    return Expected(best, choices=("static", "continuous"),
                    hint="TPOT only counts the gaps after the first token. Which scheduler lets new "
                         "prompts interrupt a running decode batch? Simulate both and compare "
                         "summary()['tpot_p99'].")
