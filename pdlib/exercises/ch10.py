"""Checkers for chapter 10, "Reproducing the papers". Every expected value is computed with pdlib
(:mod:`pdlib.reproduce`, the cost model, the trace statistics), never typed in; simulations are
cached so a notebook that checks twice pays once."""
from __future__ import annotations

from functools import lru_cache

from .. import models
from .. import reproduce as rp
from .. import workload
from . import Expected, exercise


@exercise("ch10.kv_gb_mooncake", "How many GB of KV cache (BF16) does a prompt of the mean length of "
          "the mooncake-conversation trace leave behind in Llama-2-70B?")
def kv_gb_mooncake() -> Expected:
    mean_prompt = workload.trace_info("mooncake-conversation").prompt_stats.mean
    gb = mean_prompt * models.get("Llama-2-70B").kv_bytes_per_token("bf16") / 1e9
    return Expected(gb, rel=0.05, unit="GB",
                    hint="mean prompt (pdlib.workload.trace_info('mooncake-conversation')."
                         "prompt_stats.mean, tokens) × KV bytes per token "
                         "(models.get('Llama-2-70B').kv_bytes_per_token()); 1 GB = 1e9 bytes. "
                         "Llama-2-70B has grouped-query attention: 8 KV heads, not 64.")


@exercise("ch10.emission_h100", "At what rate (Gb/s) does one 8×H100-SXM prefill node produce KV "
          "cache while it prefills an 8,192-token prompt of Llama-2-70B (roofline step time)?")
def emission_h100() -> Expected:
    return Expected(rp.kv_emission_gbps(8192, model="Llama-2-70B", gpu="H100-SXM", tp=8), rel=0.05,
                    unit="Gb/s",
                    hint="bits of KV (8 × 8,192 × KV bytes per token) ÷ prefill time "
                         "(pdlib.CostModel('Llama-2-70B', 'H100-SXM', tp=8).prefill(8192).time); "
                         "pdlib.reproduce.kv_emission_gbps does it. Compare with the A100 node's rate.")


@lru_cache(maxsize=None)
def _slo_scale_3p1d() -> float:
    res = rp.distserve_slo_scale()
    return float(res["configs"].set_index("config").scale_at_target["3P1D"])


@exercise("ch10.slo_scale_3p1d", "In the chapter's SLO-scale experiment (DistServe's example at 6 "
          "req/s per GPU), what is the smallest SLO scale at which a 3P1D deployment serves 90% of "
          "its requests within both scaled targets?")
def slo_scale_3p1d() -> Expected:
    return Expected(_slo_scale_3p1d(), rel=0.03, unit="× the SLO",
                    hint="pdlib.reproduce.distserve_slo_scale() simulates every xPyD with up to 4 GPUs; "
                         "its 'configs' table holds scale_at_target per configuration. By hand: each "
                         "request needs max(ttft / 0.4 s, tpot / 0.04 s); take the 90th percentile.")
