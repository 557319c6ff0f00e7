"""The cost model's measured terms (per-step, per-item and per-layer fixed costs, GEMM efficiency
by shard size, attention efficiency, fitted all-reduce): off by default and then bit for bit the pure
roofline; each term by hand; the breakdown sums to the step time; the simulator's pricer agrees."""
import numpy as np
import pytest

import pdlib
from pdlib import CostModel, models
from pdlib.cost import allreduce_time
from pdlib.models import attention_pairs, dtype_bytes
from pdlib.sim.pricing import StepPricer

TERMS = dict(overhead=2e-3, layer_overhead=40e-6, gemm_half_tokens=80.0, gemm_half_width=200.0,
             attention_efficiency=0.3, allreduce_latency=25e-6, allreduce_bandwidth=150e9,
             context_seconds=5e-7, item_seconds=3e-4)
CAL = CostModel("Llama-2-70B", "H100-SXM", tp=4, **TERMS)


def old_roofline_time(cm: CostModel, n_items, T, L, pairs, logits, d=0.0, c=0.0):
    """The pure roofline exactly as pdlib priced it before the measured terms existed (the same
    expressions in the same order): what every default CostModel must still return, bit for bit."""
    m, tp = cm.model, cm.tp
    T, L, pairs = np.float64(T), np.float64(L), np.float64(pairs)
    logits = np.float64(logits)
    matmul = 2.0 * m.matmul_params * T + 2.0 * m.hidden * m.vocab * logits
    attention = m.attention_flops_per_pair * pairs
    if m.attention == "mla":
        matmul = matmul + m.context_upprojection_flops_per_token * c
        attention = attention + (m.decode_attention_flops_per_pair - m.attention_flops_per_pair) * d
    bytes_ = (m.step_weight_bytes(T, cm.dtype) / tp + cm.kv_bytes_per_token * (L + T)
              + m.activation_bytes_per_token(cm.dtype) * T / tp)
    compute = (matmul / (tp * cm.matmul_peak * cm.flops_efficiency)
               + attention / (tp * cm.attention_peak * cm.flops_efficiency))
    memory = bytes_ / (cm.gpu.mem_bw * cm.bw_efficiency)
    comm = 2 * m.n_layers * allreduce_time(T * m.hidden * dtype_bytes(cm.dtype), tp, cm.comm_link)
    return float(cm.overhead + np.maximum(compute, memory) + comm + cm.context_seconds * L), \
        float(compute), float(memory)


@pytest.mark.parametrize("model,gpu,tp,kw", [
    ("Llama-3.1-8B", "H100-SXM", 1, {}), ("Llama-2-70B", "A100-80GB", 4, {"overhead": 1e-3}),
    ("Mixtral-8x7B", "H100-SXM", 2, {"dtype": "fp8"}), ("Mistral-7B-v0.1", "L40S", 1, {}),
    ("DeepSeek-V3", "H200-SXM", 8, {"dtype": "fp8", "context_seconds": 1e-9}),
    ("Qwen-72B", "H100-SXM", 8, {}), ("BLOOM-176B", "H200-SXM", 8, {}), ("phi-2", "A100-80GB", 1, {})])
def test_default_cost_model_is_the_pure_roofline_bit_for_bit(model, gpu, tp, kw):
    cm = CostModel(model, gpu, tp=tp, **kw)
    assert cm.is_pure_compute and cm.layer_overhead == 0 and cm.allreduce_bandwidth is None
    rng = np.random.default_rng(0)
    for _ in range(40):
        k = int(rng.integers(1, 6))
        items = [(int(rng.choice([1, 1, 7, 512, 2048])), int(rng.integers(0, 5000))) for _ in range(k)]
        a = np.asarray(items, dtype=np.float64)
        p = attention_pairs(a[:, 0], a[:, 1], cm.model.sliding_window)
        one = a[:, 0] == 1
        want = old_roofline_time(cm, k, a[:, 0].sum(), a[:, 1].sum(), p.sum(), k, p[one].sum(),
                                 a[~one, 1].sum())
        s = cm.step(items)
        assert (s.time, s.compute_time, s.memory_time) == want          # exact, not approx
        assert s.layer_time == 0.0 and s.efficiency_time == 0.0 and s.roofline_time == max(want[1:])


def test_each_measured_term_by_hand():
    m, tp = CAL.model, CAL.tp
    s_w = m.hidden / tp                                            # 2,048 elements per GPU
    for n in (1, 64, 4096):
        want = CAL.flops_efficiency * n / (n + 80.0) * s_w / (s_w + 200.0)
        assert CAL.gemm_efficiency(n) == pytest.approx(want, rel=1e-15)
    assert CAL.with_(gemm_half_tokens=0.0, gemm_half_width=0.0).gemm_efficiency(7) == CAL.flops_efficiency
    # a 1,024-token prefill alone: one item, one row of logits
    st = CAL.step([(1024, 0)])
    assert st.layer_time == pytest.approx(80 * 40e-6)
    msg = 1024 * m.hidden * 2
    assert st.comm_time == pytest.approx(2 * 80 * (25e-6 + msg / 150e9), rel=1e-12)
    F = CAL.gpu.flops
    compute = (2 * m.matmul_params * 1024 / (tp * F * CAL.gemm_efficiency(1024))
               + 2 * m.hidden * m.vocab * 1 / (tp * F * CAL.gemm_efficiency(1))
               + m.attention_flops_per_pair * attention_pairs(1024, 0) / (tp * F * 0.3))
    assert st.compute_time == pytest.approx(compute, rel=1e-12)
    assert st.bound == "compute"
    assert st.item_time == pytest.approx(3e-4)                      # one item
    assert st.time == pytest.approx(2e-3 + 3e-4 + 80 * 40e-6 + max(compute, st.memory_time) + st.comm_time,
                                    rel=1e-12)
    # the per-cached-token term: one decode of 1,000 cached tokens
    assert CAL.step([(1, 1000)]).context_time == pytest.approx(5e-7 * 1000)
    # the per-item term counts requests, not tokens: 16 decodes pay 16 × 300 µs at any context, a
    # prefill batch of 4 prompts 4 ×, and decode(b, L) agrees with step
    for L in (10, 5000):
        assert CAL.step([(1, L)] * 16).item_time == pytest.approx(16 * 3e-4, rel=1e-15)
    assert CAL.step([(512, 0)] * 4).item_time == pytest.approx(4 * 3e-4, rel=1e-15)
    np.testing.assert_allclose(CAL.decode(np.array([1, 8, 64]), 700).item_time, 3e-4 * np.array([1, 8, 64]))
    assert CAL.step([(1, 700)] * 8).time - CAL.with_(item_seconds=0.0).step([(1, 700)] * 8).time \
        == pytest.approx(8 * 3e-4, rel=1e-9)


def test_breakdown_terms_sum_to_the_step_time_scalar_and_swept():
    for items in ([(1024, 0)], [(1, 1000)] * 32, [(512, 2048), (1, 500), (1, 9000)]):
        st = CAL.step(items)
        b = st.breakdown
        assert list(b) == ["per_step", "per_item", "per_layer", "roofline", "efficiency", "all_reduce",
                           "context"]
        assert b["per_item"] == pytest.approx(3e-4 * len(items), rel=1e-15)
        assert all(v >= 0 for v in b.values())
        assert sum(b.values()) == pytest.approx(st.time, rel=1e-12)
        # roofline is the flat-η_F roof of the same step, recomputed by hand
        flat = CAL.with_(gemm_half_tokens=0.0, gemm_half_width=0.0, attention_efficiency=None)
        assert b["roofline"] == pytest.approx(max(flat.step(items).compute_time, st.memory_time), rel=1e-12)
    sw = CAL.decode(np.arange(1, 257), 2000)
    total = sum(np.asarray(v) for v in sw.breakdown.values())
    np.testing.assert_allclose(total, sw.time, rtol=1e-12)
    gemm_only = CAL.with_(attention_efficiency=None)
    pre = gemm_only.prefill(np.array([16, 128, 1024, 8192]))
    eff = np.asarray(pre.efficiency_time)
    assert eff[0] == 0.0                # memory-bound: the GEMMs' fall-off hides under the memory roof
    assert np.all(eff[1:] > 0)
    flat_c = np.asarray(gemm_only.with_(gemm_half_tokens=0.0, gemm_half_width=0.0)
                        .prefill(np.array([16, 128, 1024, 8192])).compute_time)
    slow = np.asarray(pre.compute_time) / flat_c                    # small GEMMs lose most
    assert np.all(np.diff(slow) < 0) and slow[0] == pytest.approx((1 + 80 / 16) * (1 + 200 / 2048), rel=0.02)


def test_layer_kernel_time_by_hand_and_its_place_in_the_step():
    cm = CAL
    m = cm.model
    per = m.matmul_params / m.n_layers
    for n in (1, 256, 4096):
        c = 2 * per * n / (cm.tp * cm.gpu.flops * cm.gemm_efficiency(n))
        b = (per * 2 + m.activation_bytes_per_token() / m.n_layers * n) / (cm.tp * cm.gpu.mem_bw * cm.bw_efficiency)
        assert cm.layer_kernel_time(n) == pytest.approx(40e-6 + max(c, b), rel=1e-12)
    # the layers are most of a decode step: n_layers × one layer ≈ the step without overhead,
    # all-reduce, context and LM head (within the LM head's and KV bytes' share)
    st = cm.step([(1, 100)])
    layers = m.n_layers * cm.layer_kernel_time(1)
    rest = st.time - cm.overhead - st.item_time - st.comm_time - st.context_time
    assert layers == pytest.approx(rest, rel=0.03)


def test_pricer_equals_cost_model_with_every_measured_term():
    for cm in (CAL, CostModel("DeepSeek-V3", "H200-SXM", tp=8, dtype="fp8", **TERMS),
               CostModel("Llama-3.1-8B", "A100-80GB", overhead=1e-3, layer_overhead=3e-5,
                         gemm_half_tokens=60.0, gemm_half_width=150.0)):
        pr = StepPricer(cm, share=False)
        rng = np.random.default_rng(3)
        for _ in range(40):
            n = int(rng.integers(2, 64))
            T = n + int(rng.integers(1, 4096))
            g = int(rng.integers(0, n + 1))
            L, pairs = float(rng.integers(0, 10**6)), float(rng.integers(1, 10**7))
            d, c = float(rng.integers(0, pairs)), float(rng.integers(0, L + 1))
            want = cm.cost(n, T, L, pairs, g, decode_pairs=d, chunk_context=c)
            t, bound = pr.step(n, T, L, pairs, g, d, c)
            assert t == pytest.approx(float(want.time), rel=1e-9) and bound == want.bound
        # a decode stretch, vectorized
        B = 24
        ctx = B * 1000.0 + B * np.arange(200.0)
        prs = B * attention_pairs(1, ctx / B, cm.model.sliding_window)
        times, bound = pr.decode_steps(B, ctx, prs)
        want = cm.cost(B, B, ctx, prs, B, decode_pairs=prs, chunk_context=0.0)
        np.testing.assert_allclose(times, want.time, rtol=1e-9)
        assert bound == want.bound[-1]


def test_simulator_runs_a_calibrated_model_and_the_terms_slow_it():
    reqs = pdlib.workload.poisson(rate=2.0, n=300, prompt=512, output=64, seed=0)
    plain = pdlib.simulate(pdlib.sim.colocated(model="Llama-3.1-8B", gpu="H100-SXM"), reqs).summary()
    cal = pdlib.simulate(pdlib.sim.colocated(model="Llama-3.1-8B", gpu="H100-SXM",
                                             cost_kwargs={"overhead": 5e-3, "layer_overhead": 4e-5}),
                         reqs).summary()
    # every decode step pays 5 ms + 32 × 40 µs = 6.28 ms more
    assert cal["tpot_p50"] - plain["tpot_p50"] == pytest.approx(6.28e-3, rel=0.15)


def test_item_seconds_reaches_the_simulator_through_knobs_and_costs_each_request():
    # two requests arriving together, 1,000-token prompts, 11 tokens each: every decode step holds
    # both, so with 250 µs per item TPOT grows by exactly 2 × 250 µs
    wl = pdlib.workload.Workload(np.zeros(2), np.array([1000, 1000]), np.array([11, 11]), name="two")
    base = CostModel("Llama-3.1-8B", "H100-SXM", overhead=1e-3)
    tpot = {}
    for item in (0.0, 2.5e-4):
        kw = base.with_(item_seconds=item).knobs()
        res = pdlib.simulate(pdlib.sim.colocated(model="Llama-3.1-8B", gpu="H100-SXM", cost_kwargs=kw), wl)
        tpot[item] = res.requests.tpot.to_numpy()
    np.testing.assert_allclose(tpot[2.5e-4] - tpot[0.0], 2 * 2.5e-4, rtol=1e-6)


def test_knobs_round_trip_and_the_calibration_note_is_not_compared():
    cm = CAL.with_(calibration="a note")
    again = CostModel(cm.model, cm.gpu, tp=cm.tp, **cm.knobs())
    assert again == cm == CAL and again.calibration == "a note"
    assert hash(again) == hash(CAL)
    assert "per layer=40 µs" in repr(CAL) and "η_A=0.3" in repr(CAL) and "per item=300 µs" in repr(CAL)
    assert cm.knobs()["item_seconds"] == 3e-4


@pytest.mark.parametrize("bad,match", [
    ({"layer_overhead": -1e-6}, "layer_overhead"), ({"gemm_half_tokens": -1.0}, "gemm_half_tokens"),
    ({"gemm_half_width": float("inf")}, "gemm_half_width"), ({"attention_efficiency": 0.0}, "attention_efficiency"),
    ({"attention_efficiency": 1.5}, "attention_efficiency"), ({"allreduce_latency": 1e-5}, "needs allreduce_bandwidth"),
    ({"allreduce_bandwidth": 0.0}, "allreduce_bandwidth"),
    ({"allreduce_bandwidth": 1e11, "allreduce_latency": -1.0}, "allreduce_latency"),
    ({"item_seconds": -1e-6}, "item_seconds"), ({"item_seconds": float("nan")}, "item_seconds")])
def test_bad_terms_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        CostModel("Llama-3.1-8B", "H100-SXM", **bad)


def test_fitted_allreduce_is_used_only_above_one_gpu():
    one = CostModel("Llama-3.1-8B", "H100-SXM", tp=1, allreduce_latency=1e-3, allreduce_bandwidth=1e9)
    assert one.step([(1, 10)]).comm_time == 0.0
    assert models.get("Llama-3.1-8B").n_layers == 32
