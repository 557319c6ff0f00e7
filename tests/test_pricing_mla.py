"""The simulator's step pricer equals CostModel.cost for FP8 weights and for MLA models, whose
decode pairs (absorbed form) and chunk context (rebuilt keys and values) are priced apart."""
import numpy as np
import pytest

import pdlib
from pdlib.models import attention_pairs
from pdlib.sim.pricing import StepPricer

MLA = pdlib.CostModel("DeepSeek-V3", "H200-SXM", tp=8, dtype="fp8", overhead=1e-3,
                      context_seconds=1e-9)


@pytest.mark.parametrize("cm", [MLA, pdlib.CostModel("Llama-3.1-8B", "H100-SXM", dtype="fp8"),
                                pdlib.CostModel("Llama-3.1-8B", "H100-SXM", dtype="fp8",
                                                attention_dtype="fp8")],
                         ids=["mla-fp8", "gqa-fp8", "gqa-fp8-attention"])
def test_pricer_matches_cost_model_with_the_split(cm):
    pr = StepPricer(cm, share=False)
    rng = np.random.default_rng(2)
    for _ in range(30):
        n = int(rng.integers(2, 64))
        T = n + int(rng.integers(1, 4096))
        L, pairs = float(rng.integers(0, 10**6)), float(rng.integers(1, 10**7))
        d, c = float(rng.integers(0, pairs)), float(rng.integers(0, L + 1))
        want = cm.cost(n, T, L, pairs, 1, decode_pairs=d, chunk_context=c)
        t, bound = pr.step(n, T, L, pairs, 1, d, c)
        assert t == pytest.approx(float(want.time), rel=1e-9) and bound == want.bound


def test_pricer_prices_a_real_mixed_step_like_cost_model_step():
    for items in ([(512, 1024), (1, 2000), (1, 3000), (1, 50)],             # memory-bound
                  [(4096, 8192), (1, 100_000), (1, 100_000), (1, 50_000)]):  # compute-bound
        pairs = [float(attention_pairs(n, L)) for n, L in items]
        d = sum(p for (n, _), p in zip(items, pairs) if n == 1)
        c = sum(L for n, L in items if n > 1)
        T, ctx = sum(n for n, _ in items), sum(L for _, L in items)
        t, bound = StepPricer(MLA).step(len(items), T, ctx, sum(pairs), len(items), d, c)
        want = MLA.step(items)
        assert t == pytest.approx(float(want.time), rel=1e-9) and bound == want.bound
    assert bound == "compute"
    # priced as if every pair were a prefill pair (the old pricer) the step would be cheaper
    as_prefill, _ = StepPricer(MLA).step(len(items), T, ctx, sum(pairs), len(items), 0.0, c)
    assert as_prefill < t


def test_pricer_infers_the_split_where_totals_decide_it_and_refuses_otherwise():
    pr = StepPricer(MLA)
    # all decodes: every pair absorbed
    t, _ = pr.step(3, 3, 6000, 6003, 3)
    assert t == pytest.approx(float(MLA.step([(1, 1000), (1, 2000), (1, 3000)]).time), rel=1e-9)
    # one chunk: no decode pairs, its context rebuilt
    t, _ = pr.step(1, 512, 1024, float(attention_pairs(512, 1024)), 0)
    assert t == pytest.approx(float(MLA.cost(1, 512, 1024, attention_pairs(512, 1024), 0).time),
                              rel=1e-9)
    with pytest.raises(ValueError, match="decode_pairs"):
        pr.step(2, 513, 3000, 1e6, 2)


def test_decode_stretch_uses_the_absorbed_form():
    pr = StepPricer(MLA)
    ctx = np.array([1000.0, 5000.0, 20000.0])
    times, _ = pr.decode_steps(4, ctx, ctx + 4)
    want = [float(MLA.cost(4, 4, L, L + 4, 4, decode_pairs=L + 4, chunk_context=0.0).time) for L in ctx]
    assert times == pytest.approx(want, rel=1e-9)
    assert times == pytest.approx([float(MLA.decode(4, L / 4).time) for L in ctx], rel=1e-9)
    # a GQA model's pricer carries no MLA terms
    assert StepPricer(pdlib.CostModel("Llama-3.1-8B", "H100-SXM")).coefficients(4, 4, 4)[5:] == (0.0, 0.0)
