"""Model catalog: every number pinned to its source (the config.json fields of each model's Hugging
Face repository, official sizes from model cards) and every formula to a hand computation."""
import numpy as np
import pytest

from pdlib import models
from pdlib.models import ModelSpec, attention_pairs, from_hf_config

# KV bytes per token (BF16): 2 · layers · kv_heads · head_dim · 2 from each config.json
# (MLA: layers · (kv_lora_rank + qk_rope_head_dim) · 2)
KV_BF16 = {
    "Llama-3.1-8B": 131_072, "Llama-2-7B": 524_288, "Llama-2-70B": 327_680, "Llama-3.1-70B": 327_680,
    "Qwen2.5-72B": 327_680, "Llama-3.1-405B": 516_096, "Qwen2.5-7B": 57_344, "DeepSeek-V3": 70_272,
    "OPT-175B": 4_718_592,
}


@pytest.mark.parametrize("name,expected", sorted(KV_BF16.items()))
def test_kv_bytes_per_token_matches_facts(name, expected):
    assert models.get(name).kv_bytes_per_token("bf16") == expected


def test_kv_formula_by_hand():
    m = models.get("Llama-3.1-70B")
    assert m.kv_bytes_per_token("bf16") == 2 * 80 * 8 * 128 * 2
    assert m.kv_bytes_per_token("fp8") == 2 * 80 * 8 * 128 * 1
    assert m.kv_bytes_per_token("fp32") == 2 * m.kv_bytes_per_token("bf16")
    ds = models.get("DeepSeek-V3")
    assert ds.attention == "mla"
    assert ds.kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2


def test_70b_4k_cache_is_1_342_gb_and_deepseek_0_29_gb():
    # 4,096 tokens -> 1.342 GB (Llama-3.1-70B: 4,096 · 327,680 B), 0.29 GB (DeepSeek-V3: · 70,272 B)
    assert models.get("Llama-3.1-70B").kv_bytes(4096) / 1e9 == pytest.approx(1.342, abs=5e-4)
    assert models.get("DeepSeek-V3").kv_bytes(4096) / 1e9 == pytest.approx(0.29, abs=5e-3)


# Models whose official count is a rounded marketing size ("13B", "37B active") get 1.5%;
# every other official count must match within 1% (the bar).
LOOSE = {"OPT-13B", "OPT-66B", "OPT-175B"}


@pytest.mark.parametrize("name", models.names())
def test_parameter_counts_match_official_sizes(name):
    tol = 0.015 if name in LOOSE else 0.01
    assert models.get(name).params == pytest.approx(models.OFFICIAL_PARAMS[name], rel=tol)


def test_moe_active_parameters():
    assert models.get("Mixtral-8x7B").active_params == pytest.approx(12.9e9, rel=0.01)
    assert models.get("DeepSeek-V3").active_params == pytest.approx(37e9, rel=0.02)
    dense = models.get("Llama-3.1-8B")
    assert dense.active_params == dense.params


def test_llama_8b_params_by_hand():
    h, f, V, l = 4096, 14336, 128256, 32
    per_layer = h * h * 2 + h * 1024 * 2 + 3 * h * f + 2 * h
    assert models.get("Llama-3.1-8B").params == l * per_layer + 2 * V * h + h


def test_attention_pairs_causal_and_window():
    assert attention_pairs(1, 1000) == 1001                      # decode sees its context + itself
    assert attention_pairs(4, 0) == 10                            # 1+2+3+4
    assert attention_pairs(2, 3) == 4 + 5
    # sliding window 4: positions 3..6 see min(p, 4) keys = 3 + 4 + 4 + 4
    assert attention_pairs(4, 2, window=4) == 15
    assert attention_pairs(3, 0, window=10) == 6                  # window not reached
    n = np.array([1, 512, 4096])
    assert np.allclose(attention_pairs(n, 0), n * (n + 1) / 2)


def test_prefill_flops_70b_4k_is_5_8e14():
    # the source article's claim 7, checked by hand: 2 · 70e9 · 4,096 ≈ 5.7e14 for the matmuls,
    # plus attention and one row of logits: about 5.8e14 FLOP
    assert models.get("Llama-3.1-70B").prefill_flops(4096) == pytest.approx(5.8e14, rel=0.02)


def test_flops_decomposition_by_hand():
    m = models.get("Llama-2-7B")
    got = m.flops(10, 100, logits=1)
    expected = (2 * m.matmul_params * 10 + 2 * 32 * (128 + 128) * 32 * (10 * 100 + 55)
                + 2 * 4096 * 32000)
    assert got == pytest.approx(expected)
    # a chunk that does not end the prompt needs no logits
    assert m.flops(10, 100, logits=0) == pytest.approx(expected - 2 * 4096 * 32000)


def test_moe_step_reads_only_touched_experts():
    m = models.get("Mixtral-8x7B")
    one = float(m.step_weight_bytes(1))
    many = float(m.step_weight_bytes(10_000))
    embed = m.embedding_params * 2
    # one token touches 2 of 8 experts; a big batch touches all of them (all weights but the table)
    assert many == pytest.approx(m.weight_bytes("bf16") - embed, rel=1e-6)
    assert one < 0.4 * many
    expert = 3 * 4096 * 14336 * 2
    assert many - one == pytest.approx(32 * 6 * expert, rel=1e-6)


def test_dense_step_reads_all_weights_but_the_embedding_table():
    m = models.get("Llama-3.1-8B")
    assert float(m.step_weight_bytes(1)) == pytest.approx((m.params - 128256 * 4096) * 2)
    gpt2 = models.get("GPT-2")   # tied: the table is read again as the LM head
    assert float(gpt2.step_weight_bytes(1)) == pytest.approx(
        (gpt2.params - gpt2.embedding_params + 50257 * 768) * 2)


def test_from_hf_config_qwen2_has_qkv_bias_and_gqa():
    q = models.get("Qwen2.5-7B")
    assert q.qkv_bias and q.attention == "gqa" and q.n_heads // q.n_kv_heads == 7
    assert models.get("Mistral-7B-v0.1").sliding_window == 4096
    assert models.get("GPT-2").attention == "mha" and models.get("GPT-2").tied_embeddings


def test_from_hf_config_custom_and_head_dim_override():
    cfg = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 96, "num_attention_heads": 6,
           "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 160, "vocab_size": 300}
    s = from_hf_config(cfg, name="toy")
    assert s.head_dim == 32 and s.kv_bytes_per_token("fp32") == 2 * 2 * 2 * 32 * 4
    assert s.params == 2 * (96 * (6 * 32 + 2 * 2 * 32) + 6 * 32 * 96 + 3 * 96 * 160 + 2 * 96) + 2 * 300 * 96 + 96


def test_lookup_errors_and_register():
    with pytest.raises(KeyError, match="known: .*Llama-3.1-8B"):
        models.get("Llama-9")
    assert models.get("llama-3.1-8b").name == "Llama-3.1-8B"
    with pytest.raises(ValueError, match="already"):
        models.register(models.get("GPT-2"))
    toy = models.get("Llama-3.1-8B").with_(name="toy-test-model", n_layers=2)
    models.register(toy)
    assert models.get("toy-test-model").n_layers == 2
    with pytest.raises(KeyError, match="dtype"):
        models.get("GPT-2").kv_bytes_per_token("fp7")


@pytest.mark.parametrize("bad", [dict(n_layers=0), dict(hidden=-4), dict(n_kv_heads=5), dict(mlp="swish")])
def test_invalid_specs_are_rejected(bad):
    fields = dict(name="x", n_layers=2, hidden=64, n_heads=8, n_kv_heads=2, head_dim=8, ffn=128, vocab=100)
    fields.update(bad)
    with pytest.raises(ValueError):
        ModelSpec(**fields)


# ------------------------------------------------------------------ MLA: two forms of attention
def test_mla_decode_runs_the_absorbed_form_17_mflop_per_pair_prefill_the_plain_5_mflop():
    ds = models.get("DeepSeek-V3")
    # absorbed (decode): 2 · heads · (kv_lora_rank + rope + kv_lora_rank) · layers
    assert ds.decode_attention_flops_per_pair == 2 * 128 * (512 + 64 + 512) * 61 == 16_990_208
    assert ds.decode_attention_flops_per_pair / 1e6 == pytest.approx(17.0, abs=0.05)
    # non-absorbed (prefill): 2 · heads · (qk_nope + rope + v) · layers
    assert ds.attention_flops_per_pair == 2 * 128 * (128 + 64 + 128) * 61 == 4_997_120
    assert ds.attention_flops_per_pair / 1e6 == pytest.approx(5.0, abs=0.05)
    # a chunk with cached context rebuilds each cached token's keys and values from the latent
    assert ds.context_upprojection_flops_per_token == 2 * 512 * 128 * (128 + 128) * 61
    # GQA and MHA: one form only, nothing to rebuild
    for name in ("Llama-3.1-70B", "Llama-2-7B"):
        m = models.get(name)
        assert m.decode_attention_flops_per_pair == m.attention_flops_per_pair
        assert m.context_upprojection_flops_per_token == 0


def test_flops_price_each_item_in_the_form_it_runs():
    ds = models.get("DeepSeek-V3")
    head = 2 * ds.hidden * ds.vocab
    # a decode (1, L): L + 1 absorbed pairs
    assert ds.flops(1, 1000) == pytest.approx(2 * ds.matmul_params + 16_990_208 * 1001 + head)
    # a prefill chunk (c, L): non-absorbed pairs plus the context rebuilt
    pairs = 512 * 1000 + 512 * 513 / 2
    want = (2 * ds.matmul_params * 512 + 4_997_120 * pairs
            + ds.context_upprojection_flops_per_token * 1000 + head)
    assert ds.flops(512, 1000) == pytest.approx(want)
    assert ds.prefill_flops(4096) == pytest.approx(2 * ds.matmul_params * 4096
                                                   + 4_997_120 * 4096 * 4097 / 2 + head)
    # elementwise on arrays, each element in its own form
    both = ds.flops(np.array([1, 512]), np.array([1000, 1000]))
    assert both == pytest.approx([ds.flops(1, 1000), ds.flops(512, 1000)])
    # GQA: the old formula, unchanged
    m = models.get("Llama-2-7B")
    assert m.flops(1, 100) == pytest.approx(2 * m.matmul_params + 2 * 32 * 256 * 32 * 101
                                            + 2 * 4096 * 32000)


def test_mla_decode_attention_sits_near_the_ridge_gqa_far_below():
    from pdlib import hardware
    ds = models.get("DeepSeek-V3")
    # 17.0 MFLOP per cached token read, 70,272 bytes each (BF16 latent): ~242 FLOP/B
    assert ds.decode_attention_intensity("bf16") == pytest.approx(16_990_208 / 70_272)
    assert 0.7 < ds.decode_attention_intensity("bf16") / hardware.gpu("H100-SXM").ridge < 1.0
    assert ds.decode_attention_intensity("bf16") > hardware.gpu("H200-SXM").ridge
    assert ds.decode_attention_intensity("fp8") == pytest.approx(2 * 16_990_208 / 70_272)
    # GQA: 2 · 64 · 256 · 80 FLOP per 327,680 bytes = 8 FLOP/B (Llama-3.1-70B)
    assert models.get("Llama-3.1-70B").decode_attention_intensity() == pytest.approx(8.0)
    # with the weights amortized away a whole decode step approaches it from above
    lim = [ds.decode_intensity_limit(L) for L in (4096, 32768, 10**7)]
    assert lim[0] > lim[1] > lim[2] > ds.decode_attention_intensity()
    assert lim[2] == pytest.approx(ds.decode_attention_intensity(), rel=0.01)
    L = 32768
    by_hand = float(ds.flops(1, L)) / (70_272 * (L + 1) + ds.activation_bytes_per_token())
    assert ds.decode_intensity_limit(L) == pytest.approx(by_hand)
