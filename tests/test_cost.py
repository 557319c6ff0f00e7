"""Roofline cost model: FACTS.md §4's arithmetic recomputed, hand-computed steps, invariants."""
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pdlib
from pdlib import CostModel, hardware, kv_emission_rate, kv_transfer_time, models
from pdlib.cost import fitting_cost_model

L70 = "Llama-3.1-70B"


def fitting_tp(model, gpu):
    """Cost model at the smallest tensor-parallel degree at which ``model`` fits on ``gpu``."""
    return fitting_cost_model(model, gpu, max_tp=32)[0]


def test_contract_names():
    cm = pdlib.CostModel(models.get(L70), hardware.gpu("H100-SXM"), tp=8)
    s = cm.step([(512, 0), (1, 1000), (1, 2000)])
    for field in ("time", "compute_time", "memory_time", "bound"):
        assert hasattr(s, field)
    assert s.bound in ("compute", "memory")
    assert cm.prefill(512).time > 0 and cm.decode(8, 1000).time > 0


def test_step_by_hand_single_decode():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    m = cm.model
    s = cm.step([(1, 1000)])
    flops = 2 * m.matmul_params + 2 * 32 * 256 * 32 * 1001 + 2 * 4096 * 128256
    nbytes = (m.params - 128256 * 4096) * 2 + 131072 * 1001 + m.activation_bytes_per_token()
    assert s.flops == pytest.approx(flops)
    assert s.bytes == pytest.approx(nbytes)
    assert s.compute_time == pytest.approx(flops / (989e12 * 0.6))
    assert s.memory_time == pytest.approx(nbytes / (3.35e12 * 0.8))
    assert s.time == pytest.approx(max(s.compute_time, s.memory_time))
    assert s.bound == "memory"


def test_step_equals_shortcuts():
    cm = CostModel("Llama-3.1-8B", "A100-80GB")
    assert cm.step([(512, 0)]).time == pytest.approx(cm.prefill(512).time)
    assert cm.step([(1, 700)] * 16).time == pytest.approx(cm.decode(16, 700).time)
    assert cm.step([(256, 512)] * 3).time == pytest.approx(cm.prefill(256, 512, batch=3).time)


def test_batching_amortizes_weights():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    mixed = cm.step([(512, 0), (1, 1000), (1, 2000)]).time
    apart = cm.step([(512, 0)]).time + cm.step([(1, 1000), (1, 2000)]).time
    assert mixed < apart


@pytest.mark.parametrize("gpu", hardware.gpu_names())
def test_decode_batch_1_is_memory_bound_on_every_gpu(gpu):
    for model in ("Llama-3.1-8B", L70, "Qwen2.5-7B"):
        assert fitting_tp(model, gpu).decode(1, 1024).bound == "memory"


@pytest.mark.parametrize("gpu", hardware.gpu_names())
def test_decode_turns_compute_bound_near_the_ridge_point(gpu):
    # At full efficiency and context 0 a bf16 decode does ~2 FLOP per 2-byte weight per request,
    # so intensity ≈ batch: decode turns compute-bound when the batch reaches the ridge point.
    g = hardware.gpu(gpu)
    cm = fitting_tp("Llama-3.1-8B", g).with_(flops_efficiency=1.0, bw_efficiency=1.0)
    # Exactly: B·f / F = (W_read + B·q) / W  with f FLOPs and q bytes (KV + activations) per
    # request, so B = r·W_read / (f − r·q), r = F/W the ridge point.
    m, r = cm.model, g.ridge
    f = (2 * m.matmul_params + 2 * m.hidden * m.vocab + m.attention_flops_per_pair) / cm.tp
    q = cm.kv_bytes_per_token + m.activation_bytes_per_token() / cm.tp
    w_read = float(m.step_weight_bytes(1)) / cm.tp
    assert cm.decode_ridge_batch(context=0) == pytest.approx(r * w_read / (f - r * q), rel=1e-6)
    # The LM head and the activations move it a little above the ridge point, not far.
    assert g.ridge <= cm.decode_ridge_batch(context=0) <= 1.2 * g.ridge
    # Longer contexts add KV bytes but few FLOPs: the crossover moves out.
    assert cm.decode_ridge_batch(context=4096) > cm.decode_ridge_batch(context=0)


def test_prefill_is_compute_bound():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    assert cm.prefill(4096).bound == "compute"
    assert cm.prefill(4096).intensity > 5 * cm.gpu.ridge


def test_claim7_70b_4k_prefill_123_ms_on_8_h100_at_60pct_mfu():
    cm = CostModel(L70, "H100-SXM", tp=8, flops_efficiency=0.6)
    assert cm.prefill(4096).compute_time == pytest.approx(0.123, rel=0.02)


def test_claim8_chunk_steps_vs_decode_vs_stall():
    # FACTS.md §4 claim 8: 70B on 8×H100, ~7 ms pure decode, ~34 ms per 1k-chunk step,
    # a 10k prompt in one go stalls ~324 ms.
    cm = CostModel(L70, "H100-SXM", tp=8)
    dec = cm.decode(8, 2000)
    assert dec.memory_time == pytest.approx(0.007, rel=0.1)        # the weights, read once
    assert dec.time == pytest.approx(dec.memory_time + dec.comm_time)
    assert dec.comm_time < 0.3 * dec.memory_time                   # 160 small all-reduces
    # FACTS' step numbers are compute only; the all-reduces of tp=8 come on top of them.
    chunks = [cm.step([(1024, 1024 * i)] + [(1, 2000)] * 8) for i in range(10)]
    assert np.mean([c.compute_time for c in chunks]) == pytest.approx(0.034, rel=0.1)
    stall = cm.step([(10_240, 0)] + [(1, 2000)] * 8)
    assert stall.compute_time == pytest.approx(0.324, rel=0.05)
    assert stall.time == pytest.approx(stall.compute_time + stall.comm_time)
    # chunking trades one long stall for ten steps that are each ~5x a pure decode step
    assert stall.time > 8 * max(c.time for c in chunks) > 8 * 4 * dec.time


def test_claim6_kv_transfer_26_8_ms_on_one_ndr_link_3_4_ms_on_eight():
    t1 = kv_transfer_time(L70, 4096, "IB-NDR-400G")
    t8 = kv_transfer_time(L70, 4096, "IB-NDR-400G", parallel_links=8)
    assert t1 == pytest.approx(0.0268, rel=0.01)
    assert t8 == pytest.approx(0.0034, rel=0.03)
    # 1 GB over 400 Gb/s takes 20 ms
    assert kv_transfer_time(models.get(L70), 1e9 / 327_680, hardware.link("IB-NDR-400G")) == pytest.approx(0.02, rel=0.01)


def test_layerwise_transfer_hides_behind_prefill():
    link = hardware.link("IB-NDR-400G")
    whole = kv_transfer_time(L70, 4096, link) - link.latency
    # prefill longer than transfer: only the last layer's share shows
    exposed = kv_transfer_time(L70, 4096, link, mode="layerwise", prefill_time=0.123)
    assert exposed - link.latency == pytest.approx(whole / 80)
    # prefill shorter than transfer: the excess shows, plus one layer of prefill
    exposed = kv_transfer_time(L70, 4096, link, mode="layerwise", prefill_time=0.010)
    assert exposed - link.latency == pytest.approx(whole - 0.010 + 0.010 / 80)
    with pytest.raises(ValueError, match="prefill_time"):
        kv_transfer_time(L70, 4096, link, mode="layerwise")


@pytest.mark.parametrize("model,gbps", [(L70, 9.5), ("Llama-3.1-8B", 37), ("Llama-2-7B", 160)])
def test_claim7_kv_emission_rate_of_one_h100_at_50pct_mfu(model, gbps):
    rate = kv_emission_rate(model, "H100-SXM", mfu=0.5)
    assert rate * 8 / 1e9 == pytest.approx(gbps, rel=0.03)
    # with a long prompt attention adds FLOPs and the rate drops
    assert kv_emission_rate(model, "H100-SXM", mfu=0.5, prompt=8192) < rate


def test_tensor_parallel_splits_work_and_pays_all_reduce():
    one = CostModel("Llama-3.1-8B", "H100-SXM", tp=1).prefill(4096)
    two = CostModel("Llama-3.1-8B", "H100-SXM", tp=2).prefill(4096)
    assert two.compute_time == pytest.approx(one.compute_time / 2)
    assert one.comm_time == 0 and two.comm_time > 0
    # 2 all-reduces per layer of 4096 × 4096 × 2 bytes over NVLink4 (450 GB/s), ring of 2
    msg = 4096 * 4096 * 2
    expected = 2 * 32 * (2 * 1 / 2 * msg / 450e9 + 2 * 1 * hardware.link("NVLink4").latency)
    assert two.comm_time == pytest.approx(expected)


def test_kv_capacity_and_max_batch():
    cm = CostModel(L70, "H100-SXM", tp=8)
    free = 80e9 * 0.9 - models.get(L70).weight_bytes() / 8
    assert cm.kv_capacity_tokens == int(free // (327_680 / 8))
    assert cm.max_decode_batch(4096) == cm.kv_capacity_tokens // 4096
    # MLA's latent is not sharded by tensor parallelism
    assert CostModel("DeepSeek-V3", "H200-SXM", tp=8, dtype="fp8").kv_shards == 1


def test_errors_name_the_problem():
    with pytest.raises(KeyError, match="known"):
        CostModel("Llama-3.1-8B", "H900")
    with pytest.raises(ValueError, match="does not divide"):
        CostModel("Llama-3.1-8B", "H100-SXM", tp=3)
    with pytest.raises(ValueError, match="does not fit"):
        CostModel("Llama-3.1-405B", "H100-SXM", tp=1)
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    with pytest.raises(ValueError, match="tokens"):
        cm.prefill(-5)
    with pytest.raises(ValueError, match="batch"):
        cm.decode(0, 100)
    with pytest.raises(ValueError, match="at least one"):
        cm.step([])
    with pytest.raises(ValueError, match="flops_efficiency"):
        cm.with_(flops_efficiency=1.5)
    with pytest.raises(ValueError, match="tokens"):
        kv_transfer_time(L70, -1, "IB-NDR-400G")


def test_vectorized_sweep_of_a_million_configs_is_fast_and_exact():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    rng = np.random.default_rng(0)
    batch = rng.integers(1, 512, 1_000_000)
    ctx = rng.integers(0, 32_000, 1_000_000)
    t0 = time.perf_counter()
    s = cm.decode(batch, ctx)
    assert time.perf_counter() - t0 < 1.0
    assert s.time.shape == (1_000_000,)
    for i in (0, 17, 999_999):
        assert s.time[i] == pytest.approx(cm.decode(int(batch[i]), int(ctx[i])).time)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8192), st.integers(0, 30_000), st.integers(1, 256), st.integers(1, 4096))
def test_step_time_is_monotone(new, ctx, batch, extra):
    cm = CostModel("Llama-3.1-8B", "A100-80GB")
    base = cm.step([(new, ctx)] + [(1, ctx)] * batch).time
    assert cm.step([(new + extra, ctx)] + [(1, ctx)] * batch).time >= base
    assert cm.step([(new, ctx + extra)] + [(1, ctx)] * batch).time >= base
    assert cm.step([(new, ctx)] + [(1, ctx)] * (batch + 1)).time >= base
    assert cm.with_(bw_efficiency=0.5).step([(new, ctx)]).time >= cm.step([(new, ctx)]).time
