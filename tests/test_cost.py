"""Roofline cost model: the source article's arithmetic recomputed, hand-computed steps (BF16, FP8,
MLA's two attention forms), invariants."""
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
    # the article's claim 8, by hand: 70B on 8×H100, ~7 ms pure decode (141 GB / 8 at 0.8 ·
    # 3.35 TB/s), ~34 ms per 1k-chunk step, a 10k prompt in one go stalls ~324 ms.
    cm = CostModel(L70, "H100-SXM", tp=8)
    dec = cm.decode(8, 2000)
    assert dec.memory_time == pytest.approx(0.007, rel=0.1)        # the weights, read once
    assert dec.time == pytest.approx(dec.memory_time + dec.comm_time)
    assert dec.comm_time < 0.3 * dec.memory_time                   # 160 small all-reduces
    # those step numbers are compute only; the all-reduces of tp=8 come on top of them.
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


# ------------------------------------------------------------------ FP8 compute
def _prefill_parts(m, P):
    """(matmul FLOPs, attention FLOPs) of one whole prefill of P tokens, by hand."""
    return 2 * m.matmul_params * P + 2 * m.hidden * m.vocab, m.attention_flops_per_pair * P * (P + 1) / 2


def test_fp8_matmuls_run_at_twice_the_bf16_peak_on_h100():
    bf16 = CostModel("Llama-3.1-8B", "H100-SXM")
    fp8 = bf16.with_(dtype="fp8")
    mm, attn = _prefill_parts(bf16.model, 2048)
    assert bf16.prefill(2048).compute_time == pytest.approx((mm + attn) / (989e12 * 0.6))
    # matmuls at the 1,979 TFLOP/s FP8 peak, attention still in BF16 (the default attention_dtype)
    assert fp8.matmul_peak == 1979e12 and fp8.attention_peak == 989e12
    assert fp8.prefill(2048).compute_time == pytest.approx(mm / (1979e12 * 0.6) + attn / (989e12 * 0.6))
    # the matmul part is half the BF16 one (989 / 1979 = 0.4997)
    attn_time = attn / (989e12 * 0.6)
    ratio = (fp8.prefill(2048).compute_time - attn_time) / (bf16.prefill(2048).compute_time - attn_time)
    assert ratio == pytest.approx(0.5, rel=1e-3)
    # FP8 attention as well: the whole step at the FP8 peak
    both = fp8.with_(attention_dtype="fp8")
    assert both.prefill(2048).compute_time == pytest.approx((mm + attn) / (1979e12 * 0.6))
    # FLOPs do not change, bytes of weights halve
    assert fp8.prefill(2048).flops == pytest.approx(bf16.prefill(2048).flops)
    assert fp8.weight_bytes_per_gpu == pytest.approx(bf16.weight_bytes_per_gpu / 2)
    assert fp8.ridge == pytest.approx(2 * bf16.ridge, rel=1e-3)


def test_fp8_on_a_gpu_without_an_fp8_peak_is_weight_only():
    bf16 = CostModel("Llama-3.1-8B", "A100-80GB")
    fp8 = bf16.with_(dtype="fp8", attention_dtype="fp8")
    assert hardware.gpu("A100-80GB").fp8_flops is None
    assert fp8.matmul_peak == fp8.attention_peak == 312e12
    assert fp8.prefill(2048).compute_time == pytest.approx(bf16.prefill(2048).compute_time)
    d_bf16, d_fp8 = bf16.decode(1, 0), fp8.decode(1, 0)
    assert d_fp8.memory_time < 0.55 * d_bf16.memory_time         # weights (and KV) read in half the bytes
    # int8 / int4 weights are weight-only everywhere, even where an FP8 peak exists
    assert CostModel("Llama-3.1-8B", "H100-SXM", dtype="int8").matmul_peak == 989e12


def test_attention_dtype_is_validated():
    with pytest.raises(ValueError, match="attention_dtype must be one of 'bf16', 'fp16', 'fp8'"):
        CostModel("Llama-3.1-8B", "H100-SXM", attention_dtype="int4")


def test_eta_f_default_sits_between_sarathis_measured_fractions():
    # the η_F docstring: Sarathi-Serve's 1,024-token Yi-34B prefill on 2 × A100 (table-2 results,
    # row 3) ran its linear layers at 0.68 of peak and the whole step at 0.51
    from pdlib import measurements
    row = measurements.sarathi_mixed_batch().iloc[2]
    m, peak = models.get("Yi-34B"), 2 * hardware.gpu("A100-PCIe-80GB").flops
    linear = (2 * m.matmul_params * 1024 + 2 * m.hidden * m.vocab) / peak / (row.linear_ms / 1e3)
    step = float(m.prefill_flops(1024)) / peak / (row.step_ms / 1e3)
    assert linear == pytest.approx(0.68, abs=0.005) and step == pytest.approx(0.51, abs=0.005)
    assert step < CostModel("Llama-3.1-8B", "H100-SXM").flops_efficiency < linear


# ------------------------------------------------------------------ MLA in the cost model
DS = "DeepSeek-V3"


def test_mla_decode_step_prices_the_absorbed_form():
    cm = CostModel(DS, "H200-SXM", tp=8, dtype="fp8")
    m = cm.model
    s = cm.decode(64, 4096)
    mm = 64 * (2 * m.matmul_params + 2 * m.hidden * m.vocab)
    attn = 64 * 16_990_208 * 4097
    assert s.flops == pytest.approx((mm + attn) / 8)
    assert s.compute_time == pytest.approx(mm / (8 * 1979e12 * 0.6) + attn / (8 * 989e12 * 0.6))


def test_mla_prefill_chunk_pays_the_plain_form_and_rebuilds_its_context():
    cm = CostModel(DS, "H200-SXM", tp=8, dtype="fp8")
    m = cm.model
    pairs = 512 * 1024 + 512 * 513 / 2
    mm = 2 * m.matmul_params * 512 + 2 * m.hidden * m.vocab + m.context_upprojection_flops_per_token * 1024
    attn = 4_997_120 * pairs
    s = cm.prefill(512, 1024)
    assert s.flops == pytest.approx((mm + attn) / 8)
    assert s.compute_time == pytest.approx(mm / (8 * 1979e12 * 0.6) + attn / (8 * 989e12 * 0.6))
    assert cm.step([(512, 1024)]).time == pytest.approx(s.time)


def test_mla_mixed_step_sums_its_items_and_cost_needs_the_split():
    cm = CostModel(DS, "H200-SXM", tp=8, dtype="fp8")
    m = cm.model
    items = [(512, 1024), (1, 2000), (1, 3000)]
    s = cm.step(items)
    attn_flops = sum(float(m.attention_flops(n, L)) for n, L in items)
    mm = 2 * m.matmul_params * 514 + 2 * m.hidden * m.vocab * 3
    assert s.flops * 8 == pytest.approx(mm + attn_flops)
    pairs = sum(float(models.attention_pairs(n, L)) for n, L in items)
    with pytest.raises(ValueError, match="decode_pairs .* chunk_context"):
        cm.cost(3, 514, 6024, pairs)
    same = cm.cost(3, 514, 6024, pairs, decode_pairs=2001 + 3001, chunk_context=1024)
    assert same.time == pytest.approx(s.time) and same.flops == pytest.approx(s.flops)
    # non-MLA models need no split: pairs cost the same in both forms
    gqa = CostModel("Llama-3.1-8B", "H100-SXM")
    assert gqa.cost(3, 514, 6024, pairs).time == pytest.approx(gqa.step(items).time)


def test_mla_decode_at_large_batch_with_whole_requests_per_gpu_lands_near_the_ridge():
    # FlashMLA (github.com/deepseek-ai/FlashMLA) reports a compute-bound regime for MLA decode on
    # H800s; with the weights amortized (DeepSeek spreads experts over many GPUs and runs
    # attention data-parallel) a DeepSeek-V3 decode step's intensity at 32k context is ~272 FLOP/B,
    # 0.92 of an H100's ridge; a GQA model's stays at a few FLOP/B whatever the batch.
    h100 = hardware.gpu("H100-SXM")
    ds = models.get(DS)
    assert 0.85 < ds.decode_intensity_limit(32768) / h100.ridge < 1.0
    assert models.get(L70).decode_intensity_limit(32768) < 0.1 * h100.ridge
    # the limit is what the cost model's decode step tends to when weights stop counting
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    assert float(cm.decode(1e12, 4096).intensity) == pytest.approx(
        cm.model.decode_intensity_limit(4096), rel=1e-3)
    # tensor-parallel attention splits heads but every GPU reads the whole latent: ÷ tp
    cm8 = CostModel(DS, "H200-SXM", tp=8, dtype="fp8", kv_dtype="bf16")
    per_gpu = float(cm8.decode(1e12, 10**7).intensity)
    assert per_gpu == pytest.approx(ds.decode_attention_intensity("bf16") / 8, rel=0.02)


# ------------------------------------------------------------------ prefill threshold
def test_prefill_turns_compute_bound_above_a_prompt_length_found_by_hand():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    m = cm.model
    F, W = 989e12 * 0.6, 3.35e12 * 0.8
    w_read = float(m.step_weight_bytes(1))
    q = m.kv_bytes_per_token() + m.activation_bytes_per_token()
    A, head = m.attention_flops_per_pair, 2 * m.hidden * m.vocab
    # compute(P) = memory(P):  A/2·P² + (2 N_mm + A/2 − q·F/W)·P + head − w_read·F/W = 0
    roots = np.roots([A / 2, 2 * m.matmul_params + A / 2 - q * F / W, head - w_read * F / W])
    P = max(r.real for r in roots)
    assert cm.prefill_ridge_tokens() == pytest.approx(P, rel=1e-6)
    assert cm.prefill(0.99 * P).bound == "memory" and cm.prefill(1.01 * P).bound == "compute"
    # back of the envelope: ridge · η_F/η_W · bytes read / (2 N_mm), 220–300 tokens on an H100
    rough = cm.gpu.ridge * 0.6 / 0.8 * w_read / (2 * m.matmul_params)
    assert P == pytest.approx(rough, rel=0.1) and 220 < P < 300           # KV + activation bytes: +7%
    # FP8 on Hopper: twice the FLOP/s for half the bytes, the same threshold; weight-only FP8
    # (A100) halves it
    assert cm.with_(dtype="fp8").prefill_ridge_tokens() == pytest.approx(P, rel=0.01)
    a100 = CostModel("Llama-3.1-8B", "A100-80GB")
    assert a100.with_(dtype="fp8").prefill_ridge_tokens() == pytest.approx(
        a100.prefill_ridge_tokens() / 2, rel=0.02)
    # a chunk after 8k cached tokens: each new token attends to them (A·L FLOPs), which outgrows
    # the 8k tokens of KV read once per step, so fewer new tokens suffice
    c = cm.prefill_ridge_tokens(context=8192)
    assert c < P
    assert cm.prefill(0.99 * c, 8192).bound == "memory" and cm.prefill(1.01 * c, 8192).bound == "compute"
    # tp splits FLOPs and weights alike: the threshold barely moves
    assert CostModel("Llama-3.1-8B", "H100-SXM", tp=2).prefill_ridge_tokens() == pytest.approx(P, rel=0.05)


def test_moe_prefill_reads_every_expert_so_short_prompts_stay_memory_bound():
    # DeepSeek-V3 on 8 H200s in FP8: a prefill touches all 256 experts but uses 8 per token,
    # so it needs thousands of tokens to turn compute-bound, not hundreds
    cm = CostModel(DS, "H200-SXM", tp=8, dtype="fp8")
    assert cm.prefill_ridge_tokens() > 5 * CostModel("Llama-3.1-70B", "H200-SXM", tp=8).prefill_ridge_tokens()
