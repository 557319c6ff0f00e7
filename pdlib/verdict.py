"""The verdict: every claim of the source article checked with pdlib's own numbers, and the
arithmetic of what comes next (long contexts, CXL, KV pools and prefix caches, hybrid designs).

The book started from an article arguing that prefill–decode (PD) disaggregation pays only in
corner cases and that chunked prefill would dominate. Its argument has nine checkable claims,
:data:`ARTICLE_CLAIMS`: the book's one numbering of them, which the introduction and chapter 11
both print with :func:`claim_list_markdown` (so the two lists cannot differ). One function per
claim computes what pdlib can compute about it, sets the numbers beside published evidence (a
citation in a named constant), and applies a *stated rule* to decide the verdict, so the verdict
changes when the numbers do::

    c = claim5_kv_size()                 # a Claim
    c.verdict, c.values["kv_bytes"]      # ("about right", 1342177280)
    verdict_table()                      # all nine, as a pandas DataFrame
    claim_list_markdown(book_claims())   # the numbered list the book prints

Verdicts come from :data:`VERDICTS`. Each ``claimN_*`` function documents its rule; its keyword
arguments are the inputs of the rule (model, GPU, link, thresholds), so a reader can ask "what if
the card had HBM?" or "what if the link were ten times slower?" and see the verdict move.

The second half serves the chapter's "what comes next": :func:`long_context_table` (KV capacity,
transfer and prefill at 128k–1M tokens, MLA and fp8 KV), :func:`cxl_vs_nic`,
:func:`kv_pool_tokens` and :func:`prefix_reload_table` (load a cached prefix or recompute it), and
two simulations: :func:`hybrid_table` (colocated vs disaggregated vs conditional disaggregation,
"prefill locally when short", under two SLOs) and :func:`prefix_cache_table` (prefix-cache hits
shrink prefill work and shift the best prefill:decode ratio).

Units: bytes, seconds, bytes/s and FLOP unless a name or a column says otherwise (ms, GB, Gb/s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from . import hardware as hw
from . import measurements
from . import models as mdl
from . import planner, published
from . import progress as _progress
from .published import calibrated_cluster as cal
from .cost import CostModel, kv_emission_rate, kv_transfer_time

__all__ = [
    "VERDICTS", "ARTICLE_CLAIMS", "CLAIM_CHAPTERS", "Claim", "SARATHI_MIXED_BATCH", "yi_34b",
    "PD_SYSTEMS", "SERVING_MODES", "MOONCAKE_NETWORK", "MOONCAKE_CAPACITY_GAIN", "CONTESTED_UTILIZATION",
    "VLLM_DOCS_THROUGHPUT", "HYBRID_DESIGNS", "ARTICLE_KV_RANGE", "ARTICLE_TENS_OF_MS",
    "SHIPPED_WEIGHT_DTYPE",
    "claim1_phases", "claim2_systems", "claim3_decode_card", "claim4_benefits", "claim5_kv_size",
    "claim6_transfer_time", "claim7_when_pd_pays", "claim8_chunked_prefill", "claim9_forecast",
    "all_claims", "book_claims", "BOOK_CLAIM_SETTINGS", "verdict_table", "verdict_markdown",
    "claim_list_markdown",
    "long_context_table", "cxl_vs_nic", "cxl_nic_ratio", "kv_pool_tokens", "prefix_reload_table",
    "HYBRID_TRACE", "HYBRID_SLOS", "HYBRID_RATIOS", "trace_workload", "hybrid_designs", "hybrid_table",
    "hybrid_summary", "prefix_cache_table",
]

#: The verdicts a claim can get, and what each means.
VERDICTS: dict[str, str] = {
    "holds": "the numbers support the claim as stated",
    "holds, with costs": "the claim stands, but what it buys has a price the claim leaves out",
    "holds, with limits": "true in the common case; the numbers show where it stops being true",
    "about right": "the right order of magnitude, off by less than 2× from the computed value",
    "right, but overstated": "the arithmetic is right; the cost it implies mostly vanishes in a "
                             "real deployment",
    "wrong example": "the idea is sound; the example given for it is not",
    "half right": "true in one of the settings it covers; events have overtaken it in another",
    "mostly wrong": "one part has some truth in it; the conclusion does not follow",
    "wrong": "the numbers say otherwise",
    "within error": "the computed difference is smaller than the model's error: neither shown nor "
                    "refuted",
    "contradicted": "a forecast that events have already overtaken",
}

#: The nine claims of the source article, paraphrased, in the order its argument makes them: the
#: book's one numbering (the introduction and chapter 11 print this list, :func:`claim_list_markdown`).
ARTICLE_CLAIMS: dict[int, str] = {
    1: "Prefill is compute-bound and decode is memory-bandwidth-bound.",
    2: "Splitwise and DistServe are systems that split prefill and decode onto different machines.",
    3: "Decode can run on cheaper, HBM-rich cards such as the L40S.",
    4: "Disaggregation raises utilization, lowers cost and lets each phase scale on its own.",
    5: "A 70B model with a 4k-token prompt leaves hundreds of MB to 1 GB of KV cache.",
    6: "Over 400 Gb/s InfiniBand, 1 GB of KV takes tens of milliseconds.",
    7: "So disaggregation pays only for ultra-long contexts on ultra-fast networks.",
    8: "Chunked prefill removes head-of-line blocking on one machine, with no KV transfer.",
    9: "Chunked prefill will dominate for the next one to two years.",
}

#: The chapters (notebook names) whose arithmetic, simulations or measurements bear on each claim;
#: chapter 11 gathers all nine.
CLAIM_CHAPTERS: dict[int, tuple[str, ...]] = {
    1: ("01_two_phases",), 2: ("05_pd_disaggregation",), 3: ("01_two_phases", "05_pd_disaggregation"),
    4: ("05_pd_disaggregation", "09_head_to_head"), 5: ("02_kv_cache",), 6: ("02_kv_cache",),
    7: ("02_kv_cache", "09_head_to_head"), 8: ("04_chunked_prefill",), 9: ("09_head_to_head",),
}

# ------------------------------------------------------------------------------ evidence
_SARATHI = "Agrawal et al., Sarathi-Serve, OSDI 2024, https://arxiv.org/abs/2403.02310"
_DISTSERVE = "Zhong et al., DistServe, OSDI 2024, https://arxiv.org/abs/2401.09670"
_SPLITWISE = "Patel et al., Splitwise, ISCA 2024, https://arxiv.org/abs/2311.18677"
_MOONCAKE = ("Qin et al., Mooncake, FAST 2025, "
             "https://www.usenix.org/conference/fast25/presentation/qin")

def _sarathi_mixed_batch() -> dict:
    """Sarathi-Serve's two specimen steps, from :func:`pdlib.measurements.sarathi_mixed_batch`."""
    t = measurements.sarathi_mixed_batch()
    dec = t[t.prefill_tokens == 0].iloc[0]
    mix = t[(t.prefill_tokens > 0) & (t.decode_tokens > 0)].iloc[0]
    return {"model": "Yi-34B", "gpu": "A100-PCIe-80GB", "tp": 2, "decode_batch": int(dec.decode_tokens),
            "mixed_prefill": int(mix.prefill_tokens), "mixed_decodes": int(mix.decode_tokens),
            "decode_s_per_token": float(dec.ms_per_token) / 1e3,
            "mixed_s_per_token": float(mix.ms_per_token) / 1e3,
            "decode_step_s": float(dec.step_ms) / 1e3, "decode_linear_s": float(dec.linear_ms) / 1e3,
            "decode_attention_s": float(dec.attention_ms) / 1e3, "decode_other_s": float(dec.other_ms) / 1e3,
            "source": measurements.SOURCES["sarathi_mixed_batch"]}


#: Sarathi-Serve's measured cost per token (seconds) of a decode-only batch of 4 requests and of a
#: mixed batch of 1,021 prefill + 3 decode tokens, Yi-34B with tp 2 on two A100 80GB **PCIe**
#: cards; also the decode step's split into linear layers, attention and the rest (per-step
#: overhead: norms, sampling, communication, launches). Not the paper's table 2 (which lists
#: datasets): the repository's ``osdi-experiments/table-2/results.csv``, carried by
#: :func:`pdlib.measurements.sarathi_mixed_batch` (file, rows and machine in ``source``).
SARATHI_MIXED_BATCH: dict = _sarathi_mixed_batch()


def yi_34b() -> mdl.ModelSpec:
    """Yi-34B, the model of Sarathi-Serve's measurements (``pdlib.models.get("Yi-34B")``)."""
    return mdl.get("Yi-34B")


@dataclass(frozen=True)
class _System:
    separate_pools: bool      # prefill and decode run on different GPU instances
    kv_transfer: bool         # the KV cache moves from the prefill to the decode instance
    source: str


#: Serving systems of the literature and whether they split the phases (separate prefill and
#: decode instances, KV moved between them). Sarathi-Serve is the chunked-prefill contrast.
PD_SYSTEMS: dict[str, _System] = {
    "Splitwise": _System(True, True, f"{_SPLITWISE}, §4 (prompt and token machine pools)"),
    "DistServe": _System(True, True, f"{_DISTSERVE}, §3 (prefill and decoding instances)"),
    "TetriInfer": _System(True, True, "Hu et al., Inference without Interference, 2024, "
                                      "https://arxiv.org/abs/2401.11181"),
    "DéjàVu": _System(True, True, "Strati et al., DéjàVu, ICML 2024 (KV-cache streaming between "
                                  "prompt and token pipelines), https://arxiv.org/abs/2403.01876"),
    "Mooncake": _System(True, True, _MOONCAKE),
    "Sarathi-Serve": _System(False, False, f"{_SARATHI} (chunked prefill on one instance)"),
}

_VLLM_CHUNKED = ("https://docs.vllm.ai/en/latest/configuration/optimization/, 'Chunked Prefill': "
                 "in vLLM V1 chunked prefill is always enabled by default")
_VLLM_PD = "https://docs.vllm.ai/en/latest/features/disagg_prefill/ ('Disaggregated Prefilling (experimental)')"


@dataclass(frozen=True)
class _Serving:
    """How a serving stack or a service runs the two phases: ``leads_with`` the mode it runs unless
    told otherwise, or the one it is built around ("chunked": both phases on every engine, prompts
    chunked; "pd": separate prefill and decode pools); ``pd`` where PD stands in it
    ("experimental", "opt-in", "headline": the mode the project leads with, "production": what the
    service runs); ``source``."""
    leads_with: str
    pd: str
    source: str


#: Where each design dominates by late 2025, inside the article's one-to-two-year horizon: the mode
#: each serving stack runs by default or leads with, and what the largest services run. Inside
#: every prefill and decode instance the engine still schedules with chunked prefill.
SERVING_MODES: dict[str, _Serving] = {
    "vLLM": _Serving("chunked", "experimental", f"{_VLLM_CHUNKED}; {_VLLM_PD}"),
    "SGLang": _Serving("chunked", "opt-in",
                       "sgl-project/sglang, python/sglang/srt/server_args.py: disaggregation_mode defaults "
                       "to 'null' (not disaggregated); PD by --disaggregation-mode prefill|decode, "
                       "https://docs.sglang.io/advanced_features/pd_disaggregation.html; used for DeepSeek "
                       "on 96 H100s, https://lmsys.org/blog/2025-05-05-large-scale-ep/"),
    "NVIDIA Dynamo": _Serving("pd", "headline",
                              "https://github.com/ai-dynamo/dynamo; design docs, 'Disaggregated Serving', "
                              "https://docs.nvidia.com/dynamo/v-0-9-1/design-docs/disaggregated-serving"),
    "llm-d": _Serving("pd", "headline",
                      "https://llm-d.ai/docs/architecture/advanced/disaggregation ('for DP/EP deployments "
                      "of Mixture of Experts models, disaggregated serving is essential'); "
                      "llm-d/llm-d, guides/pd-disaggregation/README.md"),
    "Kimi (Mooncake)": _Serving("pd", "production", _MOONCAKE),
    "DeepSeek": _Serving("pd", "production",
                         "DeepSeek-AI, Inference System Overview (DeepSeek-V3/R1 service), 2025, "
                         "https://github.com/deepseek-ai/open-infra-index (prefill and decode deployed "
                         "separately, with expert parallelism across nodes)"),
}

#: Mooncake's network requirement: a 70B model's prefill pool emits 6–19 GB/s of KV per node, and
#: the paper recommends at least 100 Gb/s links. Source: Mooncake (Qin et al., FAST 2025; technical
#: report arXiv 2407.00079), its estimate of the KVCache bandwidth one prefill node produces.
MOONCAKE_NETWORK: dict = {"per_node_bytes_per_s": (6e9, 19e9), "recommended_bits_per_s": 100e9,
                          "source": _MOONCAKE}

#: Mooncake's capacity gain under SLOs over a colocated baseline: +59% to +498% (abstract).
MOONCAKE_CAPACITY_GAIN: tuple[float, float] = (0.59, 4.98)

#: Work arguing that a static split wastes GPU capacity (each pool idles part of the time).
CONTESTED_UTILIZATION: dict[str, str] = {
    "Adrenaline": "Liang et al., 2025, https://arxiv.org/abs/2503.20552 (decode GPUs' compute idles)",
    "Semi-PD": "Hong et al., 2025, https://arxiv.org/abs/2504.19867 (static split wastes storage "
               "and compute)",
}

#: vLLM's documentation: disaggregated prefill does not improve throughput; it tunes TTFT and
#: inter-token latency separately. Source: https://docs.vllm.ai/en/latest/features/disagg_prefill/
VLLM_DOCS_THROUGHPUT = "https://docs.vllm.ai/en/latest/features/disagg_prefill/"

#: Designs between the two pure forms, with their source.
HYBRID_DESIGNS: dict[str, str] = {
    "TaiChi": "Wang et al., 2025, https://arxiv.org/abs/2508.01989: aggregation wins under tight "
              "TTFT and relaxed TPOT, disaggregation under tight TPOT and relaxed TTFT, a mix of "
              "both in between",
    "Semi-PD": "Hong et al., 2025, https://arxiv.org/abs/2504.19867: prefill and decode share each "
               "GPU's memory (one KV store) but get separate shares of its compute",
    "conditional disaggregation": "NVIDIA Dynamo, https://github.com/ai-dynamo/dynamo: prefill "
                                  "locally on the decode worker when the uncached prompt is short",
}

#: The article's range for the KV cache of a 70B model and a 4k prompt: "hundreds of MB to 1 GB"
#: (bytes; "hundreds" taken from 100 MB).
ARTICLE_KV_RANGE: tuple[float, float] = (100e6, 1e9)

#: The article's "tens of milliseconds" for 1 GB over 400 Gb/s, as a range in seconds.
ARTICLE_TENS_OF_MS: tuple[float, float] = (0.010, 0.100)

#: Weight storage type a model ships in when it is not BF16: DeepSeek-V3's released weights are
#: FP8 (https://huggingface.co/deepseek-ai/DeepSeek-V3, "FP8 mixed precision").
SHIPPED_WEIGHT_DTYPE: dict[str, str] = {"DeepSeek-V3": "fp8"}


# ------------------------------------------------------------------------------ the claim record
@dataclass(frozen=True)
class Claim:
    """One claim checked: ``number`` (1–9), ``claim`` (the article's statement, paraphrased),
    ``measure`` (what pdlib computed, with the numbers in the text), ``values`` (the raw numbers,
    SI units unless the key says otherwise), ``evidence`` (papers, datasheets, documentation),
    ``rule`` (how the verdict follows from the values) and ``verdict`` (a key of
    :data:`VERDICTS`)."""
    number: int
    claim: str
    measure: str
    values: dict = field(repr=False)
    evidence: str
    rule: str
    verdict: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(map(repr, VERDICTS))}, "
                             f"got {self.verdict!r}")

    def as_row(self) -> dict:
        """The claim as one row of :func:`verdict_table`."""
        return {"#": self.number, "the article says": self.claim, "pdlib computes": self.measure,
                "evidence": self.evidence, "verdict": self.verdict}


def _gbps(bytes_per_s: float) -> float:
    return bytes_per_s * 8 / 1e9


#: How the prose names each published source (:func:`pdlib.calibrate.published_sources`).
_SOURCE_NAMES = {"splitwise": "Splitwise's", "vidur": "Vidur's", "sarathi": "Sarathi-Serve's"}


def _model_error(calibration: str | None, gpu: str) -> float:
    """The worse of the prefill and decode out-of-sample median absolute errors of the cost model
    ``calibration`` (None: the roofline) on ``gpu`` (:func:`pdlib.published.model_error`)."""
    src = "roofline" if calibration is None else calibration
    return max(published.model_error(src, p, gpu) for p in ("prefill", "decode"))


# ------------------------------------------------------------------------------ claim 1
def claim1_phases(model: mdl.ModelSpec | str | None = None, gpu: hw.GPU | str = "A100-PCIe-80GB",
                  tp: int = 2, context: int = 1024, mla_model: mdl.ModelSpec | str = "DeepSeek-V3",
                  mla_ridge_share: float = 0.5, **cost_kwargs) -> Claim:
    """Claim 1, the two phases. Prices Sarathi-Serve's two measured steps
    (:data:`SARATHI_MIXED_BATCH`, the repository's ``osdi-experiments/table-2/results.csv``) with
    the cost model: a decode-only step of 4 requests with ``context`` cached tokens each, and a
    mixed step of a 1,021-token prefill plus 3 decodes, on ``tp`` × ``gpu`` (default Yi-34B on the
    measurements' machine, 2 × A100 80GB PCIe).

    Rule: **holds** when the decode step is memory-bound and the mixed (prefill) step
    compute-bound; otherwise **wrong**. **Holds, with limits** when, besides, the claim stops
    being true inside the range it speaks of: a prefill is memory-bound below
    :meth:`~pdlib.cost.CostModel.prefill_ridge_tokens` tokens (short prompts, prefix-cache
    leftovers) and ``mla_model``'s absorbed decode attention does at least ``mla_ridge_share`` of
    the card's ridge in FLOP per byte of cache (DeepSeek-V3: 242 FLOP/B, near every ridge).
    """
    spec = yi_34b() if model is None else mdl.get(model)
    cm = CostModel(spec, gpu, tp=tp, **cost_kwargs)
    t2 = SARATHI_MIXED_BATCH
    dec = cm.step([(1, context)] * t2["decode_batch"])
    mix = cm.step([(t2["mixed_prefill"], 0)] + [(1, context)] * t2["mixed_decodes"])
    d_tok, m_tok = float(dec.time_per_token), float(mix.time_per_token)
    paper_ratio = t2["decode_s_per_token"] / t2["mixed_s_per_token"]
    v = {"decode_s_per_token": d_tok, "mixed_s_per_token": m_tok, "ratio": d_tok / m_tok,
         "decode_bound": dec.bound, "mixed_bound": mix.bound,
         "decode_intensity": float(dec.intensity), "mixed_intensity": float(mix.intensity),
         "ridge": cm.gpu.ridge, "paper_decode_s_per_token": t2["decode_s_per_token"],
         "paper_mixed_s_per_token": t2["mixed_s_per_token"], "paper_ratio": paper_ratio,
         "paper_decode_step_s": t2["decode_step_s"], "paper_decode_linear_s": t2["decode_linear_s"],
         "paper_decode_attention_s": t2["decode_attention_s"], "paper_decode_other_s": t2["decode_other_s"],
         "decode_step_s": float(dec.time)}
    mla = mdl.get(mla_model)
    v["prefill_threshold_tokens"] = float(cm.prefill_ridge_tokens())
    v["mla_decode_intensity"] = float(mla.decode_attention_intensity(cm.kv_dtype))
    ok = dec.bound == "memory" and mix.bound == "compute"
    limits = v["prefill_threshold_tokens"] > 1 and v["mla_decode_intensity"] >= mla_ridge_share * cm.ridge
    measure = (f"{spec.name} on {cm.tp}×{cm.gpu.name}: a decode-only step of "
               f"{t2['decode_batch']} is {dec.bound}-bound ({v['decode_intensity']:.1f} FLOP/B, "
               f"{d_tok * 1e3:.2f} ms/token); a {t2['mixed_prefill']:,}-token prefill step is "
               f"{mix.bound}-bound ({v['mixed_intensity']:.0f} FLOP/B, {m_tok * 1e3:.3f} ms/token): "
               f"{v['ratio']:.0f}× per token (measured: {paper_ratio:.0f}×). But a prefill is "
               f"memory-bound below {v['prefill_threshold_tokens']:.0f} tokens on this card, and "
               f"{mla.name}'s absorbed decode attention does {v['mla_decode_intensity']:.0f} FLOP/B "
               f"against a ridge of {cm.ridge:.0f}")
    return Claim(1, ARTICLE_CLAIMS[1], measure, v,
                 f"Sarathi-Serve's measured steps: {t2['decode_s_per_token'] * 1e3:.1f} vs "
                 f"{t2['mixed_s_per_token'] * 1e3:.2f} ms/token; of the {t2['decode_step_s'] * 1e3:.0f} ms "
                 f"decode step, linear layers {t2['decode_linear_s'] * 1e3:.1f} ms and attention "
                 f"{t2['decode_attention_s'] * 1e3:.1f} ms, the rest per-step overhead ({t2['source']}; {_SARATHI})",
                 f"holds if the decode step is memory-bound and the prefill step compute-bound; "
                 f"'with limits' if short prompts are memory-bound and an MLA decode reaches "
                 f"{mla_ridge_share:.0%} of the ridge",
                 ("holds, with limits" if limits else "holds") if ok else "wrong")


# ------------------------------------------------------------------------------ claim 2
def claim2_systems(named: Sequence[str] = ("Splitwise", "DistServe"),
                   systems: dict[str, _System] | None = None) -> Claim:
    """Claim 2, the literature. Looks up each of the ``named`` systems in ``systems`` (default
    :data:`PD_SYSTEMS`): does it run prefill and decode on separate instances and move the KV
    cache between them?

    Rule: **holds** when every named system does both; otherwise **wrong**.
    """
    table = PD_SYSTEMS if systems is None else systems
    missing = [n for n in named if n not in table]
    if missing:
        raise KeyError(f"unknown system(s) {missing}; known: {', '.join(table)}")
    split = {n: table[n].separate_pools and table[n].kv_transfer for n in named}
    others = [n for n, s in table.items() if n not in named and s.separate_pools and s.kv_transfer]
    v = {"split": split, "other_pd_systems": others}
    ok = all(split.values())
    yes = [n for n, s in split.items() if s]
    no = [n for n, s in split.items() if not s]
    measure = (f"{' and '.join(yes) or 'none of the named systems'} run separate prefill and decode "
               f"instances and move the KV cache between them"
               + (f"; {' and '.join(no)} do not" if no else "")
               + (f"; so do {', '.join(others)}" if others else ""))
    return Claim(2, ARTICLE_CLAIMS[2], measure, v,
                 "; ".join(f"{n}: {table[n].source}" for n in named),
                 "holds if every named system splits the phases and transfers the KV cache",
                 "holds" if ok else "wrong")


# ------------------------------------------------------------------------------ claim 3
def _decode_card(g: hw.GPU, ref: hw.GPU) -> bool:
    """A card suits the decode pool better than ``ref`` when it has HBM and less compute per byte
    of bandwidth (a lower ridge point)."""
    return g.is_hbm and g.ridge < ref.ridge


def claim3_decode_card(card: hw.GPU | str = "L40S", reference: hw.GPU | str = "H100-SXM",
                       idea_card: hw.GPU | str = "A100-80GB", model: str = "Llama-3.1-8B",
                       batch: int = 64, context: int = 1024) -> Claim:
    """Claim 3, the decode card. Compares ``card`` with the ``reference`` prefill card: memory
    type, bandwidth, ridge point (FLOP/B), and the decode step of ``batch`` requests of ``model``
    at ``context`` cached tokens on each. ``idea_card`` is the decode card of Splitwise's real
    design (A100). When both cards carry a catalog price, also what a dollar buys on each:
    bandwidth (GB/s per USD/h, what decode buys) and compute (TFLOP/s per USD/h, what prefill
    buys; ``prefill_value`` = the card's TFLOP/s per dollar ÷ the reference's).

    Rule: a card is a good decode card when it has HBM and a lower ridge than the reference.
    **holds** if ``card`` is one; **wrong example** if it is not but ``idea_card`` is (the idea
    stands); **wrong** if neither is. The per-dollar figures are reported, not part of the rule.
    """
    g, ref, idea = hw.gpu(card), hw.gpu(reference), hw.gpu(idea_card)
    step = {x.name: float(CostModel(model, x).decode(batch, context).time) for x in (g, ref)}
    v = {"mem_type": g.mem_type, "is_hbm": g.is_hbm, "mem_bw": g.mem_bw, "ridge": g.ridge,
         "reference_ridge": ref.ridge, "reference_mem_bw": ref.mem_bw,
         "idea_card_ridge": idea.ridge, "decode_step_s": step[g.name],
         "reference_decode_step_s": step[ref.name]}
    priced = bool(g.price_per_hour and ref.price_per_hour)
    if priced:
        v["usd_per_hour"], v["reference_usd_per_hour"] = g.price_per_hour, ref.price_per_hour
        v["price_source"], v["price_date"] = g.price_source, g.price_date
        v["bw_per_usd"], v["reference_bw_per_usd"] = g.bw_per_usd, ref.bw_per_usd
        v["flops_per_usd"], v["reference_flops_per_usd"] = g.flops_per_usd, ref.flops_per_usd
        v["prefill_value"] = v["flops_per_usd"] / v["reference_flops_per_usd"]
    if _decode_card(g, ref):
        verdict = "holds"
    else:
        verdict = "wrong example" if _decode_card(idea, ref) else "wrong"
    money = f"; {hw.NOT_PRICED} in the catalog"
    if priced:
        cheap = v["prefill_value"] >= 1
        money = (f"; per USD/h it buys {v['bw_per_usd'] / 1e9:.0f} GB/s against the {ref.name}'s "
                 f"{v['reference_bw_per_usd'] / 1e9:.0f} {'but' if cheap else 'and'} "
                 f"{v['flops_per_usd'] / 1e12:.0f} TFLOP/s against {v['reference_flops_per_usd'] / 1e12:.0f} "
                 f"({v['prefill_value']:.2f}×" + (": cheaper compute, a prefill card)" if cheap else ")"))
    measure = (f"{g.name}: {g.mem_type}, {g.mem_bw / 1e9:.0f} GB/s, ridge {g.ridge:.0f} FLOP/B vs "
               f"{ref.name}'s {ref.ridge:.0f}; {model} decode step (batch {batch}) "
               f"{step[g.name] * 1e3:.1f} ms vs {step[ref.name] * 1e3:.1f} ms{money}; "
               f"{idea.name} ({idea.mem_type}) has ridge {idea.ridge:.0f}")
    prices = (f"; prices {g.price_source}, read {g.price_date}" if priced else "")
    return Claim(3, ARTICLE_CLAIMS[3], measure, v,
                 f"{g.name} datasheet {g.source}; Splitwise decodes on A100s ({_SPLITWISE}){prices}",
                 "holds if the card has HBM and a lower ridge than the prefill card; "
                 "'wrong example' if not, while an HBM card with a lower ridge exists",
                 verdict)


# ------------------------------------------------------------------------------ claim 4
def claim4_benefits(distserve: dict | None = None, *, n: int = 400, max_gpus: int = 3,
                    seed: int = 0, min_gain: float = 1.2, calibration: str | None = None,
                    progress: bool = False) -> Claim:
    """Claim 4, the benefits. Uses DistServe's example reproduced by the simulator
    (:func:`pdlib.reproduce.distserve_example`, run with ``n`` requests, xPyD up to ``max_gpus``
    GPUs and ``calibration`` unless a result is passed as ``distserve``, whose own
    ``calibration`` then counts): goodput per GPU colocated and of each split, and the cost per
    million output tokens at the same GPU price.

    Every comparison is judged within the error of the cost model that priced it
    (:func:`pdlib.planner.comparison_band` of its calibration on the example's GPU; the roofline's
    is wide): a split *gains* when it serves more than ``1 + band`` times the colocated goodput per
    GPU, *loses* when colocation serves more than ``1 + band`` times the split's, and otherwise
    ties. Rule: **holds, with costs** when the best split gains at least ``min_gain`` × (and beyond
    the band) but some split does not beat colocation (it loses or ties: the wrong ratio buys nothing
    for a second pool and the transfers); **holds** when every split gains; **within error** when
    the best split's gain is inside the band; **wrong** when it is outside the band but below
    ``min_gain`` or a loss.
    """
    from . import reproduce as rp
    ds = distserve if distserve is not None else rp.distserve_example(
        n=n, seed=seed, max_gpus=max_gpus, calibration=calibration, progress=progress)
    cal = ds.get("calibration")
    band = planner.comparison_band(cal, ds.get("gpu", "A100-80GB"))
    t = ds["table"]
    col = float(ds["colocated_per_gpu"])
    per_gpu = dict(zip(t.config, t.per_gpu.astype(float)))
    best = max(per_gpu, key=per_gpu.get)
    gain = per_gpu[best] / col if col > 0 else math.inf
    worst = min(per_gpu, key=per_gpu.get)
    losers = [c for c, g in per_gpu.items() if g < col and not planner.within_band(g, col, band)]
    no_gain = [c for c, g in per_gpu.items() if not (g > col and not planner.within_band(g, col, band))]
    price = hw.gpu(ds.get("gpu", "A100-80GB")).price_per_hour      # USD per GPU-hour, or None
    out_tokens = int(t["output"].iloc[0]) if "output" in t.columns else 64   # the example's 64
    usd = {k: (rp.cost_per_million_tokens(r, out_tokens, price) if r > 0 else math.inf)
           if price else math.nan for k, r in (("colocated", col), ("best_split", per_gpu[best]))}
    v = {"colocated_per_gpu": col, "per_gpu": per_gpu, "best_config": best, "gain": gain,
         "worst_config": worst, "worst_ratio": per_gpu[worst] / col if col > 0 else math.inf,
         "losing_configs": losers, "no_gain_configs": no_gain, "band": band, "calibration": cal,
         "model_error": _model_error(cal, ds.get("gpu", "A100-80GB")), "usd_per_m_tokens": usd,
         "paper_gain": rp.DISTSERVE_PAPER["disaggregated_per_gpu"] / rp.DISTSERVE_PAPER["colocated_per_gpu"],
         "splitwise": dict(rp.SPLITWISE_PAPER), "mooncake_capacity_gain": MOONCAKE_CAPACITY_GAIN}
    if planner.within_band(per_gpu[best], col, band):
        verdict = "within error"
    elif gain >= min_gain:
        verdict = "holds, with costs" if no_gain else "holds"
    else:
        verdict = "wrong"
    priced = ("the roofline" if cal is None else
              f"the cost model fitted to {_SOURCE_NAMES.get(cal, cal)} {hw.gpu(ds.get('gpu', 'A100-80GB')).name} measurements")
    measure = (f"DistServe's example (13B, A100, 512/64, P90 TTFT 0.4 s, TPOT 40 ms), priced by {priced}: "
               f"{best} serves {per_gpu[best]:.2f} req/s/GPU vs {col:.2f} colocated ({gain:.2f}×; paper "
               f"{v['paper_gain']:.1f}×; the model's error makes ratios within ±{band:.0%} ties), "
               f"USD {usd['best_split']:.3f} vs {usd['colocated']:.3f} per million tokens; but "
               f"{', '.join(no_gain) or 'no split'} {'do' if len(no_gain) != 1 else 'does'} not beat "
               f"colocation beyond that error ({worst}: {v['worst_ratio']:.2f}×)")
    evidence = (f"DistServe §2.2 ≈2× ({_DISTSERVE}); Splitwise 1.4× throughput at 20% lower cost; "
                f"Mooncake +{MOONCAKE_CAPACITY_GAIN[0]:.0%}…+{MOONCAKE_CAPACITY_GAIN[1]:.0%} capacity "
                f"under SLOs; utilization contested ({', '.join(CONTESTED_UTILIZATION)}); vLLM docs: "
                f"no throughput gain ({VLLM_DOCS_THROUGHPUT})")
    return Claim(4, ARTICLE_CLAIMS[4], measure, v, evidence,
                 f"holds if the best split gains ≥ {min_gain}× goodput per GPU, beyond the model's "
                 f"error (±{band:.0%}); 'with costs' if some split does not beat colocation beyond it; "
                 f"'within error' if the best gain is inside it", verdict)


# ------------------------------------------------------------------------------ claim 5
def claim5_kv_size(model: str | mdl.ModelSpec = "Llama-3.1-70B", tokens: int = 4096,
                   dtype: str = "bf16", article_range: tuple[float, float] = ARTICLE_KV_RANGE) -> Claim:
    """Claim 5, the size of the cache: ``model.kv_bytes(tokens, dtype)`` against the article's
    ``article_range`` (bytes).

    Rule: **holds** inside the range; **about right** within a factor 2 of its nearer end;
    **wrong** otherwise.
    """
    spec = mdl.get(model)
    lo, hi = article_range
    if not 0 < lo <= hi:
        raise ValueError(f"article_range must be (low, high) bytes with 0 < low <= high, got {article_range!r}")
    kv = float(spec.kv_bytes(tokens, dtype))
    off = kv / hi if kv > hi else lo / kv if kv < lo else 1.0
    verdict = "holds" if off == 1.0 else "about right" if off <= 2.0 else "wrong"
    v = {"kv_bytes": kv, "kv_bytes_per_token": spec.kv_bytes_per_token(dtype), "tokens": tokens,
         "dtype": dtype, "factor_outside": off, "article_range": (lo, hi),
         "kv_bytes_fp8": float(spec.kv_bytes(tokens, "fp8"))}
    side = "above" if kv > hi else "below" if kv < lo else "inside"
    measure = (f"{spec.name}, {tokens:,} tokens, {dtype}: {tokens:,} × "
               f"{v['kv_bytes_per_token']:,} B = {kv / 1e9:.3f} GB, {side} the article's "
               f"{lo / 1e6:.0f} MB–{hi / 1e9:.0f} GB"
               + (f" ({off:.2f}× {'its top' if kv > hi else 'its bottom'})" if off != 1.0 else ""))
    return Claim(5, ARTICLE_CLAIMS[5], measure, v,
                 f"{spec.name} config.json ({spec.source}): {spec.n_layers} layers × "
                 f"{spec.n_kv_heads} KV heads × {spec.head_dim}",
                 "holds inside the article's range; 'about right' within 2× of it", verdict)


# ------------------------------------------------------------------------------ claim 6
def claim6_transfer_time(model: str | mdl.ModelSpec = "Llama-3.1-70B", tokens: int = 4096,
                         link: hw.Link | str = "IB-NDR-400G", gpu: hw.GPU | str = "H100-SXM",
                         tp: int = 8, nics: int | None = None, dtype: str = "bf16",
                         negligible: float = 0.05) -> Claim:
    """Claim 6, the transfer time. Seconds for 1 GB over ``link``, and for the ``tokens``-token
    cache of ``model``: whole over one link; whole over ``nics`` links (default: one per KV shard
    of a ``tp``-GPU prefill instance, as on an HGX node); and streamed layer by layer over those
    links during the prefill (only the exposed part counts), beside the prefill time on
    ``tp`` × ``gpu``. The rule uses the whole transfer after the prefill, what vLLM's NixlConnector
    (and llm-d, Dynamo's vLLM path) does; streaming (Mooncake) only shrinks it further.

    Rule: the arithmetic is right when 1 GB takes between 10 and 100 ms. Then **right, but
    overstated** if the whole transfer over the ``nics`` links adds less than ``negligible`` of the
    prefill time (``exposed_fraction``), else **holds**; **wrong** if the arithmetic is off.
    """
    spec = mdl.get(model)
    ln = hw.link(link)
    cm = CostModel(spec, gpu, tp=tp, kv_dtype=dtype)
    k = cm.kv_shards if nics is None else int(nics)
    if k < 1:
        raise ValueError(f"nics must be >= 1, got {nics!r}")
    prefill = float(cm.prefill(tokens).time)
    per_gb = 1e9 / ln.bandwidth + ln.latency
    whole1 = float(kv_transfer_time(spec, tokens, ln, dtype=dtype))
    whole_k = float(kv_transfer_time(spec, tokens, ln, dtype=dtype, parallel_links=k))
    layer_k = float(kv_transfer_time(spec, tokens, ln, dtype=dtype, parallel_links=k,
                                     mode="layerwise", prefill_time=prefill))
    lo, hi = ARTICLE_TENS_OF_MS
    right = lo <= per_gb < hi
    exposed = whole_k / prefill
    verdict = ("right, but overstated" if exposed < negligible else "holds") if right else "wrong"
    v = {"s_per_gb": per_gb, "whole_one_link_s": whole1, "nics": k, "whole_sharded_s": whole_k,
         "layerwise_sharded_s": layer_k, "prefill_s": prefill, "exposed_fraction": exposed,
         "exposed_fraction_layerwise": layer_k / prefill, "kv_bytes": float(spec.kv_bytes(tokens, dtype))}
    nic = f"{k} NIC{'s' if k > 1 else ''}"
    measure = (f"1 GB over {ln.name}: {per_gb * 1e3:.1f} ms; the {v['kv_bytes'] / 1e9:.2f} GB "
               f"cache: {whole1 * 1e3:.1f} ms on one link, {whole_k * 1e3:.1f} ms on {nic} after its "
               f"{prefill * 1e3:.0f} ms prefill on {cm.tp}×{cm.gpu.name} ({exposed:.2%}), "
               f"{layer_k * 1e3:.2f} ms exposed if streamed layer by layer")
    return Claim(6, ARTICLE_CLAIMS[6], measure, v,
                 f"{ln.name}: {_gbps(ln.bandwidth):.0f} Gb/s per direction ({ln.source}); an HGX "
                 f"H100 node has one 400G NIC per GPU",
                 f"arithmetic right if 1 GB takes 10–100 ms; 'overstated' if the cache, sent whole "
                 f"after the prefill over one NIC per KV shard, adds < {negligible:.0%} of the prefill "
                 f"time", verdict)


# ------------------------------------------------------------------------------ claim 7
def claim7_when_pd_pays(model_names: Sequence[str] = ("Llama-3.1-70B", "Llama-3.1-8B", "Llama-2-7B"),
                        gpu: hw.GPU | str = "H100-SXM", mfu: float = 0.5,
                        commodity_link: hw.Link | str = "100GbE", short: int | None = None,
                        long: int = 131072, dtype: str = "bf16") -> Claim:
    """Claim 7, "only for ultra-long contexts on ultra-fast networks". Two halves, each computed:

    * *long contexts*: the KV a GPU emits per second while prefilling
      (:func:`pdlib.cost.kv_emission_rate` at ``mfu``) for a ``short`` and a ``long`` prompt
      (``short=None``: the short-prompt limit, matmul FLOPs only). If longer prompts made the
      network the bottleneck, the rate would grow with the prompt.
    * *fast networks*: which of ``model_names`` emit faster than one ``commodity_link`` per GPU.

    Also reported: KV bytes per prefill FLOP (the per-token constant that decides), and the
    70B/4k prefill on 8 GPUs against its cache's transfer over one 400G link.

    Rule: **holds** if the rate grows with the prompt for some model and every model outruns the
    commodity link; **wrong** if neither half holds for any model; **mostly wrong** otherwise.
    """
    g = hw.gpu(gpu)
    ln = hw.link(commodity_link)
    rate_s, rate_l, per_flop = {}, {}, {}
    for name in model_names:
        m = mdl.get(name)
        rate_s[m.name] = float(kv_emission_rate(m, g, mfu=mfu, prompt=short, dtype=dtype))
        rate_l[m.name] = float(kv_emission_rate(m, g, mfu=mfu, prompt=long, dtype=dtype))
        flops_per_token = (2.0 * m.matmul_params if short is None
                           else float(m.prefill_flops(short)) / short)
        per_flop[m.name] = m.kv_bytes_per_token(dtype) / flops_per_token
    long_needed = any(rate_l[n] > rate_s[n] for n in rate_s)
    fast = [n for n in rate_s if rate_s[n] > ln.bandwidth]
    fast_needed_all = len(fast) == len(rate_s)
    if long_needed and fast_needed_all:
        verdict = "holds"
    elif not long_needed and not fast:
        verdict = "wrong"
    else:
        verdict = "mostly wrong"
    ref_prompt = 4096                             # the article's 70B / 4k example
    cm70 = CostModel("Llama-3.1-70B", g, tp=8)
    pre70 = float(cm70.prefill(ref_prompt).time)
    ndr = hw.link("IB-NDR-400G")
    xfer70 = float(kv_transfer_time("Llama-3.1-70B", ref_prompt, ndr, dtype=dtype))
    v = {"emission_short": rate_s, "emission_long": rate_l, "kv_bytes_per_flop": per_flop,
         "commodity_link_bandwidth": ln.bandwidth, "outrun_commodity_link": fast,
         "rate_grows_with_prompt": long_needed, "prefill_70b_s": pre70,
         "prefill_70b_flops": float(mdl.get("Llama-3.1-70B").prefill_flops(ref_prompt)),
         "transfer_70b_one_ndr_s": xfer70, "mooncake": MOONCAKE_NETWORK}
    rates = ", ".join(f"{n} {_gbps(r):.1f}" for n, r in rate_s.items())
    measure = (f"KV emitted per {g.name} at {mfu:.0%} MFU "
               f"({'short prompts' if short is None else f'{short:,}-token prompt'}): {rates} Gb/s; "
               f"at {long:,} tokens every rate is {'higher' if long_needed else 'lower'} "
               f"(attention adds FLOPs, not KV). Faster than {ln.name} "
               f"({_gbps(ln.bandwidth):.0f} Gb/s): {', '.join(fast) or 'none'}. 70B {ref_prompt:,}-token "
               f"prefill on 8×{g.name}: {pre70 * 1e3:.0f} ms vs {xfer70 * 1e3:.1f} ms over one 400G link")
    return Claim(7, ARTICLE_CLAIMS[7], measure, v,
                 f"Mooncake: a 70B model needs {MOONCAKE_NETWORK['per_node_bytes_per_s'][0] / 1e9:.0f}–"
                 f"{MOONCAKE_NETWORK['per_node_bytes_per_s'][1] / 1e9:.0f} GB/s per node, ≥ "
                 f"{MOONCAKE_NETWORK['recommended_bits_per_s'] / 1e9:.0f} Gb/s links ({_MOONCAKE})",
                 "holds if KV per second grows with the prompt and every model outruns a commodity "
                 "link; 'mostly wrong' if only one half holds for some model", verdict)


# ------------------------------------------------------------------------------ claim 8
def claim8_chunked_prefill(model: str | mdl.ModelSpec = "Llama-3.1-70B", gpu: hw.GPU | str = "H100-SXM",
                           tp: int = 8, prompt: int = 10_000, chunk: int = 1_000,
                           decode_batch: int = 32, decode_context: int = 1_000,
                           step_cost_limit: float = 1.5, slowdown_limit: float = 1.05) -> Claim:
    """Claim 8, chunked prefill. A ``prompt``-token prefill arrives while ``decode_batch`` requests
    decode at ``decode_context`` tokens (the article's 10k-prompt example, chapter 04's setup):
    the longest step the decodes see when it runs whole vs in ``chunk``-token chunks
    (:func:`pdlib.chunking.chunk_table`), a decode-only step, and the prefill's own time both ways.

    Rule: chunking *removes* the blocking when its longest step is at most half the whole-prompt
    step. It *costs* when a chunk step is more than ``step_cost_limit`` × a decode-only step or the
    prefill takes more than ``slowdown_limit`` × longer. **holds, with costs** if it removes the
    blocking at a cost; **holds** if at no cost; **wrong** if it does not remove it.
    """
    from . import chunking
    cm = CostModel(model, gpu, tp=tp)
    sizes = sorted({int(chunk), int(prompt)})
    tab = chunking.chunk_table(cm, prompt, sizes, decode_batch, decode_context).set_index("chunk")
    whole_step = float(tab.max_step_s[prompt])
    chunk_step = float(tab.max_step_s[chunk])
    dec = float(tab.decode_step_s[chunk])
    slowdown = float(tab.prefill_s[chunk] / tab.prefill_s[prompt])
    removes = chunk_step <= 0.5 * whole_step
    costs = chunk_step > step_cost_limit * dec or slowdown > slowdown_limit
    verdict = ("holds, with costs" if costs else "holds") if removes else "wrong"
    from .chunking import SARATHI_PAPER
    v = {"whole_step_s": whole_step, "chunk_step_s": chunk_step, "decode_step_s": dec,
         "prefill_slowdown": slowdown, "overhead_no_decodes": float(tab.overhead[chunk]),
         "chunk_steps": int(tab.steps[chunk]), "paper_overhead": dict(SARATHI_PAPER["prefill_overhead"])}
    po = SARATHI_PAPER["prefill_overhead"]
    measure = (f"{cm.model.name} on {cm.tp}×{cm.gpu.name}, {prompt:,}-token prompt among "
               f"{decode_batch} decodes: one {whole_step * 1e3:.0f} ms stall whole, or "
               f"{v['chunk_steps']} steps of ≤ {chunk_step * 1e3:.0f} ms in {chunk:,}-token chunks, vs "
               f"{dec * 1e3:.1f} ms decode-only ({chunk_step / dec:.1f}× longer steps); the prefill "
               f"itself takes {slowdown:.2f}× longer (roofline without decodes: "
               f"{v['overhead_no_decodes']:.3f}×)")
    return Claim(8, ARTICLE_CLAIMS[8], measure, v,
                 f"Sarathi-Serve fig. 14 (§5.4.1), measured on Yi-34B, 2 × A100 80GB PCIe: a "
                 f"{SARATHI_PAPER['prefill_overhead_prompt']:,}-token prefill "
                 + ", ".join(f"{r:.0%} slower at chunk {c:,}" for c, r in po.items())
                 + f" ({_SARATHI}; rows from {measurements.SOURCES['sarathi_chunking_overhead']})",
                 f"holds if chunking at least halves the longest step; 'with costs' if a chunk step "
                 f"exceeds {step_cost_limit}× a decode step or the prefill slows > "
                 f"{slowdown_limit - 1:.0%}", verdict)


# ------------------------------------------------------------------------------ claim 9
def cxl_nic_ratio(cxl: hw.Link | str = "CXL-3-x16", nic: hw.Link | str = "IB-XDR-800G") -> float:
    """Bandwidth of ``cxl`` divided by that of ``nic`` (per direction; dimensionless)."""
    return hw.link(cxl).bandwidth / hw.link(nic).bandwidth


def claim9_forecast(modes: dict[str, _Serving] | None = None, *, min_dominant: int = 2,
                    hybrid: dict | None = None, cxl: str = "CXL-3-x16",
                    nic: str = "IB-XDR-800G") -> Claim:
    """Claim 9, the forecast. Measures *dominance*, not availability: for each serving stack and
    service in ``modes`` (default :data:`SERVING_MODES`), the mode it runs by default or is built
    around by late 2025, inside the article's one-to-two-year horizon. Shipping a PD option does not
    count (vLLM ships one, and calls it experimental); being the default, the headline mode or what
    a service runs in production does. Also reports the CXL-vs-NIC bandwidth ratio
    (:func:`cxl_nic_ratio`) and, when given, a ``hybrid`` result (e.g. :func:`hybrid_summary`) as
    evidence that neither pure form wins everywhere.

    Rule: with ``pd_led`` the stacks and services that lead with PD and ``chunked_led`` those that
    lead with chunked prefill: **holds** if fewer than ``min_dominant`` lead with PD; **half right**
    if at least ``min_dominant`` do while others still lead with chunked prefill (each design
    dominates somewhere); **contradicted** if at least ``min_dominant`` lead with PD and none with
    chunked prefill.
    """
    table = SERVING_MODES if modes is None else modes
    bad = [n for n, m in table.items() if m.leads_with not in ("chunked", "pd")]
    if bad:
        raise ValueError(f"leads_with must be 'chunked' or 'pd'; {bad} have something else")
    ratio = cxl_nic_ratio(cxl, nic)
    pd_led = [n for n, m in table.items() if m.leads_with == "pd"]
    chunked_led = [n for n, m in table.items() if m.leads_with == "chunked"]
    by_status = {st: [n for n, m in table.items() if m.pd == st]
                 for st in ("experimental", "opt-in", "headline", "production")}
    v = {"pd_led": pd_led, "chunked_led": chunked_led, "n_pd_led": len(pd_led),
         "pd_status": by_status, "cxl_nic_ratio": ratio, "hybrid": dict(hybrid or {})}
    if len(pd_led) < min_dominant:
        verdict = "holds"
    else:
        verdict = "half right" if chunked_led else "contradicted"
    c, x = hw.link(cxl), hw.link(nic)

    def names(ns):
        return "none" if not ns else ns[0] if len(ns) == 1 else ", ".join(ns[:-1]) + " and " + ns[-1]
    measure = (f"by late 2025 chunked prefill is what {names(chunked_led)} run unless told otherwise "
               f"(PD: experimental in {names(by_status['experimental'])}, opt-in in "
               f"{names(by_status['opt-in'])}); PD is what {names(by_status['production'])} run in "
               f"production at frontier MoE scale and the headline mode of {names(by_status['headline'])}, "
               f"with chunked prefill inside each prefill and decode instance; {c.name} moves "
               f"{c.bandwidth / 1e9:.0f} GB/s, {ratio:.2f}× one {x.name} NIC")
    if hybrid:
        measure += "; " + hybrid.get("summary", ", ".join(f"{k} {val:.3g}" for k, val in hybrid.items()
                                                          if isinstance(val, (int, float))))
    return Claim(9, ARTICLE_CLAIMS[9], measure, v,
                 "; ".join(f"{k}: {m.source}" for k, m in table.items()) + "; hybrids: " + ", ".join(HYBRID_DESIGNS),
                 f"'half right' if ≥ {min_dominant} major stacks or services lead with PD (default, headline "
                 f"or production mode) while others still lead with chunked prefill; 'contradicted' if "
                 f"none does; 'holds' if fewer than {min_dominant} lead with PD", verdict)


# ------------------------------------------------------------------------------ the table
def all_claims(*, distserve: dict | None = None, hybrid: dict | None = None,
               progress: bool = False) -> list[Claim]:
    """The nine claims with their default inputs (``distserve``: a precomputed
    :func:`pdlib.reproduce.distserve_example` result for claim 4, which otherwise runs one with
    claim 4's defaults; ``hybrid``: see claim 9)."""
    return [claim1_phases(), claim2_systems(), claim3_decode_card(),
            claim4_benefits(distserve, progress=progress), claim5_kv_size(), claim6_transfer_time(),
            claim7_when_pd_pays(), claim8_chunked_prefill(), claim9_forecast(hybrid=hybrid)]


#: The settings with which the book judges the claims (the introduction and chapter 11 alike):
#: claim 4's DistServe example with 400 requests per simulation, deployments of up to 3 GPUs, and
#: its steps priced by the cost model fitted to Vidur's A100 kernel measurements
#: (``distserve_calibration``; :func:`pdlib.calibrate.from_published`): of the shipped sets, the
#: one whose worst step-time error against DistServe's own fitted OPT-13B profile
#: (:func:`pdlib.reproduce.distserve_fit_table`) is smallest (chapter 10 computes it), DistServe's
#: engine being measured by none of them. ``hybrid_calibration``: the source pricing
#: claim 9's hybrid experiment on A100-80GB (Splitwise's engine profiles of the DGX-A100).
BOOK_CLAIM_SETTINGS: dict = {"distserve_n": 400, "distserve_max_gpus": 3, "distserve_calibration": "vidur",
                             "hybrid_calibration": "splitwise"}


def book_claims(*, distserve: dict | None = None, hybrid: dict | None = None,
                progress: bool = False) -> list[Claim]:
    """:func:`all_claims` with the book's settings (:data:`BOOK_CLAIM_SETTINGS`): what the
    introduction and chapter 11 print. ``distserve``: a precomputed
    :func:`pdlib.reproduce.distserve_example` run with those settings, so chapter 11 can reuse its
    own (its xPyD configurations and calibration are checked against ``distserve_max_gpus`` and
    ``distserve_calibration``; the request count is not recorded in the result, so pass only a run
    made with ``distserve_n``); ``hybrid``: claim 9's evidence (it does not change any verdict)."""
    from . import reproduce as rp
    n, g = BOOK_CLAIM_SETTINGS["distserve_n"], BOOK_CLAIM_SETTINGS["distserve_max_gpus"]
    cal = BOOK_CLAIM_SETTINGS["distserve_calibration"]
    if distserve is None:
        distserve = rp.distserve_example(n=n, max_gpus=g, calibration=cal, progress=progress)
    else:
        if distserve.get("calibration") != cal:
            raise ValueError(f"book_claims needs distserve_example(calibration={cal!r}); got a run "
                             f"priced by {distserve.get('calibration')!r}")
        configs = set(distserve["table"].config)
        want = {rp.config_name(p, d) for p, d in rp.xpyd_configs(g)}
        if configs != want:
            raise ValueError(f"book_claims needs distserve_example(n={n}, max_gpus={g}); got a run with "
                             f"configs {sorted(configs)}")
    return all_claims(distserve=distserve, hybrid=hybrid, progress=progress)


def claim_list_markdown(claims: Iterable[Claim] | None = None, *, verdicts: bool = True) -> str:
    """The article's claims as a numbered Markdown list, in :data:`ARTICLE_CLAIMS`' one numbering:
    ``1. <claim> — **<verdict>**`` (without the verdict when ``verdicts`` is False; ``claims`` are
    then not needed). The introduction and chapter 11 both print this list, so they cannot number
    or word the claims differently. Plain CommonMark (numbered list, bold), safe in any renderer."""
    if verdicts:
        cs = {c.number: c for c in (book_claims() if claims is None else claims)}
        if sorted(cs) != sorted(ARTICLE_CLAIMS):
            raise ValueError(f"need one Claim per article claim {sorted(ARTICLE_CLAIMS)}, got {sorted(cs)}")
    lines = []
    for k, text in sorted(ARTICLE_CLAIMS.items()):
        lines.append(f"{k}. {text}" + (f" — **{cs[k].verdict}**" if verdicts else ""))
    return "\n".join(lines)


def verdict_table(claims: Iterable[Claim] | None = None, **kwargs):
    """One row per claim (pandas DataFrame indexed by claim number): the article's statement,
    what pdlib computes, the evidence and the verdict. ``claims`` default to :func:`all_claims`
    (``kwargs`` go there)."""
    import pandas as pd
    rows = [c.as_row() for c in (all_claims(**kwargs) if claims is None else claims)]
    return pd.DataFrame(rows).set_index("#").sort_index()


def verdict_markdown(claims: Iterable[Claim] | None = None, *, evidence: bool = False, **kwargs) -> str:
    """The verdict table as a Markdown table (for ``IPython.display.Markdown``): claim number, the
    article's statement, what pdlib computes, the verdict in bold, and with ``evidence`` the
    sources. ``claims`` default to :func:`all_claims` (``kwargs`` go there)."""
    cs = sorted(all_claims(**kwargs) if claims is None else claims, key=lambda c: c.number)
    head = ["#", "the article says", "pdlib computes"] + (["evidence"] if evidence else []) + ["verdict"]

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cs:
        row = [str(c.number), c.claim, c.measure] + ([c.evidence] if evidence else []) + [f"**{c.verdict}**"]
        lines.append("| " + " | ".join(cell(x) for x in row) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ what comes next
def _weight_dtype(spec: mdl.ModelSpec) -> str:
    return SHIPPED_WEIGHT_DTYPE.get(spec.name, "bf16")


def long_context_table(model_names: Sequence[str] = ("Llama-3.1-70B", "DeepSeek-V3"),
                       contexts: Sequence[int] = (131072, 262144, 524288, 1048576),
                       gpu: hw.GPU | str = "H200-SXM", tp: int = 8,
                       kv_dtypes: Sequence[str] = ("bf16", "fp8"), link: hw.Link | str = "IB-NDR-400G",
                       nics: int = 8, **cost_kwargs):
    """Long contexts, one row per (model, KV dtype, context) on one ``tp`` × ``gpu`` instance
    (weights in the dtype the model ships in, :data:`SHIPPED_WEIGHT_DTYPE`, else bf16):

    * ``KV (GB)``: ``context × kv_bytes_per_token(dtype)`` / 1e9, one request;
    * ``requests held``: ``CostModel.kv_capacity_tokens / context`` (below 1: one request does not
      fit in the instance's KV memory; MLA's latent is stored whole on every GPU of the instance);
    * ``transfer 1 NIC (s)`` / ``transfer {nics} NICs (s)``: the whole cache over ``link`` (one, or
      ``nics`` in parallel);
    * ``prefill (s)``: the roofline prefill of the whole prompt on the instance (attention FLOPs grow
      with context², so this grows faster than the cache);
    * ``transfer / prefill``: the one-NIC transfer as a fraction of the prefill;
    * ``decode step (ms)``: one decode step of that single request (reading its KV);
    * ``beyond trained context``: context > the model's ``max_context``.
    """
    import pandas as pd
    ln = hw.link(link)
    if not isinstance(nics, (int, np.integer)) or nics < 1:
        raise ValueError(f"nics must be a positive integer, got {nics!r}")
    rows = []
    for name in model_names:
        spec = mdl.get(name)
        for kd in kv_dtypes:
            cm = CostModel(spec, gpu, tp=tp, dtype=_weight_dtype(spec), kv_dtype=kd, **cost_kwargs)
            for ctx in contexts:
                if not isinstance(ctx, (int, np.integer)) or ctx < 1:
                    raise ValueError(f"contexts must be positive token counts, got {ctx!r}")
                kv = float(spec.kv_bytes(ctx, kd))
                pre = float(cm.prefill(ctx).time)
                one = float(kv_transfer_time(spec, ctx, ln, dtype=kd))
                rows.append({"model": spec.name, "attention": spec.attention.upper(), "KV dtype": kd,
                             "context": int(ctx), "KV (GB)": kv / 1e9,
                             "requests held": cm.kv_capacity_tokens / ctx,
                             "transfer 1 NIC (s)": one,
                             f"transfer {nics} NICs (s)": float(kv_transfer_time(spec, ctx, ln, dtype=kd,
                                                                                parallel_links=nics)),
                             "prefill (s)": pre, "transfer / prefill": one / pre,
                             "decode step (ms)": float(cm.decode(1, ctx).time) * 1e3,
                             "beyond trained context": ctx > spec.max_context})
    return pd.DataFrame(rows)


def cxl_vs_nic(links: Sequence[str] = ("100GbE", "IB-NDR-400G", "CXL-2.0-x16", "IB-XDR-800G",
                                       "CXL-3-x16", "Mooncake-RoCE-8x400G", "HGX-H100-8x400G",
                                       "NVLink4"),
               reference: str = "IB-XDR-800G", model: str = "Llama-3.1-70B",
               tokens: Sequence[int] = (4096, 131072), dtype: str = "bf16"):
    """Links that can carry KV, side by side: kind, Gb/s and GB/s per direction, bandwidth as a
    multiple of ``reference`` (one 800G NIC), and the time to move ``model``'s cache of each
    length in ``tokens`` (ms, whole, one link). Sorted by bandwidth."""
    import pandas as pd
    ref = hw.link(reference)
    rows = []
    for name in links:
        ln = hw.link(name)
        row = {"link": ln.name, "kind": ln.kind, "measured": ln.measured, "Gb/s": _gbps(ln.bandwidth),
               "GB/s": ln.bandwidth / 1e9, f"× {ref.name}": ln.bandwidth / ref.bandwidth}
        for t in tokens:
            row[f"{t:,}-token cache (ms)"] = float(kv_transfer_time(model, t, ln, dtype=dtype)) * 1e3
        rows.append(row)
    return pd.DataFrame(rows).sort_values("GB/s").set_index("link")


def kv_pool_tokens(model: str | mdl.ModelSpec, pool_bytes: float, dtype: str = "bf16") -> int:
    """Tokens of KV cache a pool of ``pool_bytes`` bytes (CPU DRAM, CXL memory, SSD) holds:
    ``floor(pool_bytes / kv_bytes_per_token(dtype))``."""
    if not pool_bytes > 0:
        raise ValueError(f"pool_bytes must be > 0, got {pool_bytes!r}")
    return int(pool_bytes // mdl.get(model).kv_bytes_per_token(dtype))


def prefix_reload_table(model: str | mdl.ModelSpec = "Llama-3.1-70B", gpu: hw.GPU | str = "H100-SXM",
                        tp: int = 8, prefixes: Sequence[int] = (4096, 32768, 131072),
                        links: Sequence[str] = ("100GbE", "IB-NDR-400G", "CXL-3-x16"),
                        parallel_links: int = 1, dtype: str = "bf16", **cost_kwargs):
    """Load a cached prefix from a KV pool, or recompute it? One row per (prefix length, link):
    ``recompute (ms)`` = the roofline prefill of the prefix on ``tp`` × ``gpu``; ``load (ms)`` =
    its KV over ``parallel_links`` × ``link`` (whole, :func:`pdlib.cost.kv_transfer_time`);
    ``speedup`` = recompute / load; ``load wins`` when > 1. Loading wins whenever the link is
    faster than the instance's KV emission rate (:func:`pdlib.cost.kv_emission_rate` × tp),
    the same ratio that decides whether disaggregation's transfer hides behind the prefill."""
    import pandas as pd
    cm = CostModel(model, gpu, tp=tp, kv_dtype=dtype, **cost_kwargs)
    rows = []
    for p in prefixes:
        rec = float(cm.prefill(p).time)
        for name in links:
            ln = hw.link(name)
            load = float(kv_transfer_time(cm.model, p, ln, dtype=dtype, parallel_links=parallel_links))
            rows.append({"prefix": int(p), "link": ln.name, "KV (GB)": float(cm.model.kv_bytes(p, dtype)) / 1e9,
                         "recompute (ms)": rec * 1e3, "load (ms)": load * 1e3, "speedup": rec / load,
                         "load wins": rec > load})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ simulations
#: Length distributions of the hybrid and prefix-caching experiments: the Azure LLM inference
#: trace's conversation service (``pdlib.workload.trace_info("azure-conv")``: median prompt about
#: 1,000 tokens, outputs about 200), with Poisson arrivals.
HYBRID_TRACE = "azure-conv"

#: The splits of the hybrid experiment's three GPUs that the book lets each split design choose
#: from (:func:`hybrid_table`): the best ratio depends on the cost model (the roofline's decode is
#: fast, so 2P1D balances; a calibrated decode step is slow, so 1P2D does).
HYBRID_RATIOS: tuple = ((2, 1), (1, 2))

#: Two SLOs for the hybrid experiment (seconds, P90 of each request's TTFT and TPOT, 90% of requests
#: meeting both): the same TTFT, a strict and a relaxed TPOT.
HYBRID_SLOS: dict[str, dict[str, float]] = {"strict TPOT": {"ttft": 1.0, "tpot": 0.02},
                                            "relaxed TPOT": {"ttft": 1.0, "tpot": 0.05}}


def trace_workload(rate: float, n: int = 300, seed: int = 0, cached_fraction: float = 0.0,
                   trace: str = HYBRID_TRACE):
    """``n`` Poisson requests at ``rate`` req/s with the lengths of ``trace``
    (:func:`pdlib.workload.named`), each with ``cached_fraction`` of its prompt already in a
    prefix cache (:func:`pdlib.workload.with_cached_fraction`; 0: nothing cached)."""
    from . import workload as wl
    w = wl.named(trace, n, rate=rate, seed=seed)
    return wl.with_cached_fraction(w, cached_fraction) if cached_fraction else w


def hybrid_designs(model: str = "Llama-3.1-8B", gpu: str = "A100-80GB", link: str = "IB-NDR-400G", *,
                   n_prefill: int = 2, n_decode: int = 1, local_prefill: int = 1024,
                   chunk: int = 512, calibration: str | None = None,
                   ratios: Sequence[tuple[int, int]] | None = None) -> dict:
    """Designs on the same ``n_prefill + n_decode`` GPUs, as ``{label: (architecture,
    zero-argument cluster factory)}``: colocated instances with chunked prefill (``chunk`` tokens
    per step, least-loaded router); an ``xPyD`` disaggregated cluster; the same cluster with
    conditional disaggregation (prompts whose uncached part is ≤ ``local_prefill`` tokens are
    prefilled on the decode instance, which then schedules chunked steps of ``chunk`` tokens).
    ``ratios``: the ``(x, y)`` splits to build the two split designs for (each must use
    ``n_prefill + n_decode`` GPUs; None: ``((n_prefill, n_decode),)``), so a split is not held to
    one ratio that another cost model may unbalance. ``calibration``: None (the roofline) or a
    published source pricing every instance (:func:`pdlib.published.calibrated_cluster`)."""
    from . import sim
    from .reproduce import config_name
    n = n_prefill + n_decode
    splits = [(n_prefill, n_decode)] if ratios is None else [(int(x), int(y)) for x, y in ratios]
    bad = [r for r in splits if sum(r) != n or min(r) < 1]
    if bad:
        raise ValueError(f"ratios must be (x, y) with x, y >= 1 and x + y = {n} GPUs, got {bad}")
    out = {f"colocated, chunked prefill ×{n}": ("colocated", lambda: cal(sim.colocated(
        model=model, gpu=gpu, scheduler="chunked", chunk_size=chunk, instances=n,
        router="least_loaded"), calibration))}
    for x, y in splits:
        common = dict(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link, n_prefill=x, n_decode=y)
        out[f"disaggregated {config_name(x, y)}"] = (
            "disaggregated", lambda common=common: cal(sim.disaggregated(**common), calibration))
    for x, y in splits:
        common = dict(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link, n_prefill=x, n_decode=y)
        out[f"conditional {config_name(x, y)}, local ≤ {local_prefill:,}"] = (
            "conditional", lambda common=common: cal(sim.disaggregated(
                **common, local_prefill=local_prefill, decode_chunk=chunk), calibration))
    return out


def hybrid_table(model: str = "Llama-3.1-8B", gpu: str = "A100-80GB", link: str = "IB-NDR-400G", *,
                 slos: dict[str, dict[str, float]] | None = None, n_prefill: int = 2,
                 n_decode: int = 1, local_prefill: int = 1024, chunk: int = 512, n: int = 300,
                 seed: int = 0, cached_fraction: float = 0.0, tol: float = 0.1,
                 calibration: str | None = None, ratios: Sequence[tuple[int, int]] | None = None,
                 progress: bool = False):
    """Goodput (req/s, and per GPU) of each of :func:`hybrid_designs` under each SLO of ``slos``
    (default :data:`HYBRID_SLOS`), at 90% attainment, on :func:`trace_workload` requests (``n``
    per simulation). One :func:`pdlib.sim.goodput` bisection per (SLO, design), searching
    0.1–16 req/s per GPU to relative width ``tol``.

    Columns: slo, ttft, tpot (seconds), design, arch, n_gpus, rate, per_gpu, local_share (fraction
    of requests short enough to prefill locally; 0 without conditional disaggregation), best (the
    highest per_gpu within the SLO), vs_best (per_gpu ÷ the best). ``calibration`` and ``ratios``
    as in :func:`hybrid_designs`; the calibration and ``gpu`` are kept in ``df.attrs`` for
    :func:`hybrid_summary`."""
    import pandas as pd
    from . import sim
    slos = HYBRID_SLOS if slos is None else slos
    designs = hybrid_designs(model, gpu, link, n_prefill=n_prefill, n_decode=n_decode,
                             local_prefill=local_prefill, chunk=chunk, calibration=calibration,
                             ratios=ratios)
    n_gpus = n_prefill + n_decode

    def wf(rate):
        return trace_workload(rate, n, seed, cached_fraction)

    w = wf(1.0)
    short = float(np.mean((w.prompt - w.cached) <= local_prefill))
    jobs = [(s, d) for s in slos for d in designs]
    rows = []
    for sname, dname in _progress.over(jobs, progress, "hybrid goodput searches"):
        arch, make = designs[dname]
        g = sim.goodput(make, wf, slos[sname], lo=0.1 * n_gpus, hi=16.0 * n_gpus, tol=tol)
        rows.append({"slo": sname, **slos[sname], "design": dname, "arch": arch, "n_gpus": n_gpus,
                     "rate": g.rate, "per_gpu": g.per_gpu,
                     "local_share": short if arch == "conditional" else 0.0})
    df = pd.DataFrame(rows)
    top = df.groupby("slo").per_gpu.transform("max")
    df["best"] = df.per_gpu == top
    with np.errstate(invalid="ignore", divide="ignore"):
        df["vs_best"] = df.per_gpu / top
    df.attrs.update(calibration=calibration, gpu=gpu)
    return df


def hybrid_summary(df, band: float | None = None) -> dict:
    """From a :func:`hybrid_table`: the winning architecture under each SLO, whether one pure
    form (colocated or disaggregated) wins under every SLO, and the best conditional design's
    ``vs_best`` under its worst SLO. A winner must lead the runner-up by more than ``band`` (relative; default
    :func:`pdlib.planner.comparison_band` of the table's calibration and GPU, ``df.attrs``):
    otherwise that SLO's winner is "tie" (and "none" when no design meets it at any rate
    searched), :func:`pdlib.planner.decide`. Returned as a dict with ``band``, the ``leaders``
    (highest goodput, tie or not) and a one-line ``summary`` (for :func:`claim9_forecast`)."""
    if band is None:
        band = planner.comparison_band(df.attrs.get("calibration"), df.attrs.get("gpu", "A100-80GB"))
    winners, leaders = {}, {}
    for s, g in df.groupby("slo", sort=False):
        vals = g.groupby("arch", sort=False).per_gpu.max().to_dict()
        winners[s] = planner.decide(vals, band)
        leaders[s] = str(g.loc[g.per_gpu.idxmax(), "arch"])
    pure = {a for a in winners.values() if a in ("colocated", "disaggregated")}
    one_pure_wins_all = len(set(winners.values())) == 1 and bool(pure)
    cond = df[df.arch == "conditional"]
    # the best conditional design under each SLO, at its worst SLO
    worst_cond = float(cond.groupby("slo").vs_best.max().min()) if len(cond) else math.nan
    cal = df.attrs.get("calibration")
    text = ("simulated winners" + (f" ({cal}-calibrated, ties within ±{band:.0%})" if cal else
                                   f" (roofline, ties within ±{band:.0%})") + ": "
            + ", ".join(f"{s} → {a}" for s, a in winners.items())
            + (f"; conditional disaggregation ≥ {worst_cond:.0%} of the best under every SLO"
               if len(cond) and math.isfinite(worst_cond) else ""))
    return {"winners": winners, "leaders": leaders, "band": band, "one_pure_form_wins_all": one_pure_wins_all,
            "conditional_worst_vs_best": worst_cond, "summary": text, "calibration": cal}


def prefix_cache_table(rate: float, model: str = "Llama-3.1-8B", gpu: str = "A100-80GB",
                       link: str = "IB-NDR-400G", *, fractions: Sequence[float] = (0.0, 0.5, 0.8),
                       configs: Sequence[tuple[int, int]] = ((2, 1), (1, 2)),
                       slo: dict[str, float] | None = None, n: int = 300, seed: int = 0,
                       calibration: str | None = None, progress: bool = False):
    """Prefix caching in the simulator: at a fixed ``rate`` (req/s), the same
    :func:`trace_workload` requests with each fraction of every prompt already cached
    (``fractions``), through each ``(n_prefill, n_decode)`` disaggregated configuration of
    ``configs`` and through as many colocated chunked-prefill instances as the first configuration
    has GPUs. A cached prefix skips its prefill (only ``prompt − cached`` tokens are computed) but
    its KV is still held, read by decode and, when disaggregated, transferred.

    Columns: cached_fraction, design, n_gpus, prefill_tokens (mean computed prefill tokens per
    request), ttft_p90, tpot_p90 (seconds), attainment (fraction meeting ``slo``, default the
    relaxed-TPOT SLO of :data:`HYBRID_SLOS`). ``calibration`` as in :func:`hybrid_designs`."""
    import pandas as pd
    from . import sim
    from .reproduce import config_name
    slo = HYBRID_SLOS["relaxed TPOT"] if slo is None else slo
    if not configs:
        raise ValueError("configs must list at least one (n_prefill, n_decode) pair")
    n_col = configs[0][0] + configs[0][1]
    designs = {f"colocated, chunked ×{n_col}": lambda: cal(sim.colocated(
        model=model, gpu=gpu, scheduler="chunked", instances=n_col, router="least_loaded"), calibration)}
    for p, d in configs:
        designs[f"disaggregated {config_name(p, d)}"] = (
            lambda p=p, d=d: cal(sim.disaggregated(model=model, prefill_gpu=gpu, decode_gpu=gpu,
                                                   link=link, n_prefill=p, n_decode=d), calibration))
    rows = []
    for f in _progress.over(list(fractions), progress, "cached fractions"):
        if not 0 <= f <= 1:
            raise ValueError(f"fractions must be in [0, 1], got {f!r}")
        w = trace_workload(rate, n, seed, f)
        for name, make in designs.items():
            cluster = make()
            res = sim.simulate(cluster, w)
            s = res.summary()
            rows.append({"cached_fraction": f, "design": name, "n_gpus": cluster.n_gpus,
                         "prefill_tokens": float(np.mean(w.prompt - w.cached)),
                         "ttft_p90": s["ttft_p90"], "tpot_p90": s["tpot_p90"],
                         "attainment": res.slo_attainment(**slo)})
    return pd.DataFrame(rows)
