"""Model catalog: every number pinned to FACTS.md §3 (config.json fields, official sizes) and every
formula to a hand computation."""
import numpy as np
import pytest

from pdlib import models
from pdlib.models import ModelSpec, attention_pairs, from_hf_config

# FACTS.md §3, "KV bytes per token (BF16)"
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
    # FACTS.md §3: 4,096 tokens -> 1.342 GB (Llama-3.1-70B), 0.29 GB (DeepSeek-V3)
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
    # FACTS.md §4 claim 7: a 4k prefill of a 70B model is about 5.8e14 FLOP
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
