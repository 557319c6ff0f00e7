"""Chapter 02's library code: KV-cache arithmetic (pdlib.kvmath), its plots and the exercise
checkers. Expected numbers are computed by hand from the models' config.json fields and the
links' datasheet bandwidths (FACTS.md §2–§4)."""

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

import pdlib.exercises as exercises  # noqa: E402
from pdlib import CostModel, hardware, kv_emission_rate, kv_transfer_time, kvmath, models  # noqa: E402
from pdlib.viz import kvcache as kc  # noqa: E402


# ----------------------------------------------------------------------------- size
def test_mha_equivalent_by_hand():
    # Llama-3.1-8B: 2 · 32 layers · 32 query heads · 128 · 2 bytes = Llama-2-7B's real cache
    assert kvmath.mha_kv_bytes_per_token("Llama-3.1-8B") == 2 * 32 * 32 * 128 * 2 == 524_288
    assert kvmath.mha_kv_bytes_per_token("Llama-2-7B") == models.get("Llama-2-7B").kv_bytes_per_token()
    # DeepSeek-V3: 61 layers · 128 heads · (K: 128 nope + 64 rope, V: 128) · 2 bytes
    assert kvmath.mha_kv_bytes_per_token("DeepSeek-V3") == 61 * 128 * (192 + 128) * 2
    assert kvmath.mha_kv_bytes_per_token("Llama-3.1-70B", "fp8") == 2 * 80 * 64 * 128 * 1


def test_reduction_vs_mha():
    assert kvmath.kv_reduction_vs_mha("Llama-2-7B") == 1.0                  # MHA
    assert kvmath.kv_reduction_vs_mha("Llama-3.1-8B") == 4.0                # 32 / 8 heads
    assert kvmath.kv_reduction_vs_mha("Llama-3.1-70B") == 8.0               # 64 / 8
    assert kvmath.kv_reduction_vs_mha("Qwen2.5-7B") == 7.0                  # 28 / 4
    assert kvmath.kv_reduction_vs_mha("Llama-3.1-405B") == 16.0             # 128 / 8
    assert kvmath.kv_reduction_vs_mha("DeepSeek-V3") == pytest.approx(128 * 320 / 576)   # 71.1


def test_kv_bytes_table_values():
    t = kvmath.kv_bytes_table(tokens=4096)
    assert sorted(t.index) == models.names()
    assert t["kB/token (bf16)"].is_monotonic_increasing
    assert t.loc["Llama-3.1-70B", "kB/token (bf16)"] == pytest.approx(327.680)
    assert t.loc["Llama-3.1-70B", "kB/token (fp8)"] == pytest.approx(163.840)
    assert t.loc["Llama-3.1-70B", "GB per 4,096-token request (bf16)"] == pytest.approx(1.34217728)
    assert t.loc["DeepSeek-V3", "kB/token (bf16)"] == pytest.approx(70.272)        # 61 · 576 · 2
    assert t.loc["DeepSeek-V3", "KV heads"] == "latent"
    assert t.loc["DeepSeek-V3", "elements/token/layer"] == 576
    assert t.loc["Llama-2-7B", "attention"] == "MHA"
    assert t.loc["OPT-175B", "kB/token (bf16)"] == pytest.approx(4718.592)         # FACTS: 4.72 MB
    one = kvmath.kv_bytes_table(["Qwen2.5-7B"], dtypes=("fp8",), tokens=1000)
    assert one.loc["Qwen2.5-7B", "GB per 1,000-token request (fp8)"] == pytest.approx(28_672 * 1000 / 1e9)
    with pytest.raises(KeyError, match="known"):
        kvmath.kv_bytes_table(["Llama-9"])
    with pytest.raises(KeyError, match="bf16"):
        kvmath.kv_bytes_table(["GPT-2"], dtypes=("fp9",))
    with pytest.raises(ValueError, match="tokens"):
        kvmath.kv_bytes_table(tokens=0)


# ----------------------------------------------------------------------------- fit
def test_capacity_table_by_hand():
    t = kvmath.capacity_table([("Llama-3.1-8B", "A100-80GB", 1), ("Llama-3.1-70B", "H100-SXM", 8),
                               ("DeepSeek-V3", "H200-SXM", 8, {"dtype": "fp8", "kv_dtype": "bf16"})],
                              contexts=(4096,))
    r = t.iloc[0]
    free = 0.9 * 80e9 - models.get("Llama-3.1-8B").params * 2
    assert r["free for KV/GPU (GB)"] == pytest.approx(free / 1e9)
    assert r["KV tokens"] == int(free // 131_072)
    assert r["batch @ 4,096"] == int(free // 131_072) // 4096 == 104
    r70 = t.iloc[1]
    assert r70["GPUs"] == "8×H100-SXM" and r70["KV kB/token/GPU"] == pytest.approx(327.68 / 8)
    free70 = 0.9 * 80e9 - models.get("Llama-3.1-70B").params * 2 / 8
    assert r70["KV tokens"] == int(free70 // (327_680 / 8))
    ds = t.iloc[2]                  # MLA latent is replicated on every TP rank
    assert ds["weights"] == "fp8" and ds["KV kB/token/GPU"] == pytest.approx(70.272)
    # a configuration's own options override the shared ones
    fp8 = kvmath.capacity_table([("Llama-3.1-8B", "A100-80GB", 1)], (4096,), kv_dtype="fp8")
    assert fp8.iloc[0]["KV tokens"] == int(free // 65_536)


def test_capacity_table_errors():
    with pytest.raises(ValueError, match="does not fit"):
        kvmath.capacity_table([("Llama-3.1-70B", "H100-SXM", 1)])
    with pytest.raises(ValueError, match=r"\(model, gpu, tp\)"):
        kvmath.capacity_table([("Llama-3.1-8B", "H100-SXM")])
    with pytest.raises(KeyError, match="known"):
        kvmath.capacity_table([("Llama-3.1-8B", "H900", 1)])


# ----------------------------------------------------------------------------- move
def test_transfer_table_article_numbers():
    t = kvmath.transfer_table("Llama-3.1-70B", 4096)
    assert set(t.index) == set(hardware.link_names())
    ndr = t.loc["IB-NDR-400G"]
    assert ndr["Gb/s"] == pytest.approx(400) and ndr["ms per GB"] == pytest.approx(20)
    assert ndr["transfer (ms)"] == pytest.approx(1.34217728e9 / 50e9 * 1e3 + 3e-3)   # 26.85 ms
    assert t.loc["100GbE", "transfer (ms)"] == pytest.approx(1.34217728e9 / 12.5e9 * 1e3 + 1e-2)
    assert t.loc["Mooncake-RoCE-8x400G", "measured"]
    assert list(t["transfer (ms)"]) == sorted(t["transfer (ms)"], reverse=True)
    with pytest.raises(KeyError, match="known"):
        kvmath.transfer_table("Llama-3.1-70B", 4096, ["IB-QDR-40G"])


def test_transfer_vs_prefill_sharded_and_layerwise():
    r = kvmath.transfer_vs_prefill("Llama-3.1-70B", 4096, "H100-SXM", "IB-NDR-400G", tp=8)
    wire = 1.34217728e9 / 50e9
    assert r.links == 8 and r.instance == "8×H100-SXM" and r.kv_bytes == pytest.approx(1.34217728e9)
    assert r.prefill_time == pytest.approx(CostModel("Llama-3.1-70B", "H100-SXM", tp=8).prefill(4096).time)
    assert r.whole_one_link == pytest.approx(wire + 3e-6)
    assert r.whole_sharded == pytest.approx(wire / 8 + 3e-6)                     # FACTS: 3.4 ms
    # transfer (27 ms) shorter than prefill: only the last layer's share stays exposed
    assert r.prefill_time > r.whole_one_link
    assert r.layerwise_one_link == pytest.approx(wire / 80 + 3e-6)
    assert r.layerwise_sharded == pytest.approx(wire / 8 / 80 + 3e-6)
    assert r.transfer_over_prefill == pytest.approx(r.whole_one_link / r.prefill_time)
    d = r.as_dict()
    assert d["whole, 1 link (ms)"] == pytest.approx(r.whole_one_link * 1e3) and d["KV shards"] == 8


def test_transfer_vs_prefill_slow_link_exposes_the_rest():
    # Llama-2-7B (MHA) over 100 GbE: the wire is slower than the prefill that feeds it
    r = kvmath.transfer_vs_prefill("Llama-2-7B", 4096, "H100-SXM", "100GbE")
    wire = 4096 * 524_288 / 12.5e9
    assert r.links == 1 and r.whole_sharded == r.whole_one_link
    assert r.whole_one_link > r.prefill_time
    P = r.prefill_time
    assert r.layerwise_one_link == pytest.approx(wire - P + P / 32 + 1e-5)
    # GQA with more TP ranks than KV heads: only 8 distinct shards to send
    r405 = kvmath.transfer_vs_prefill("Llama-3.1-405B", 1024, "H100-SXM", "IB-NDR-400G", tp=16,
                                      dtype="fp8", mem_utilization=0.95)
    assert r405.links == 8
    assert r405.kv_bytes == pytest.approx(1024 * 258_048)
    with pytest.raises(ValueError, match="tokens"):
        kvmath.transfer_vs_prefill("Llama-2-7B", -1, "H100-SXM", "100GbE")


# ----------------------------------------------------------------------------- keep up
def test_emission_rates_match_facts():
    t = kvmath.emission_table(["Llama-3.1-70B", "Llama-3.1-8B", "Llama-2-7B"], ["H100", "A100"])
    assert list(t.columns) == ["H100-SXM", "A100-80GB"]
    assert t.loc["Llama-3.1-70B", "H100-SXM"] == pytest.approx(9.5, rel=0.02)     # FACTS §4.7
    assert t.loc["Llama-3.1-8B", "H100-SXM"] == pytest.approx(37, rel=0.02)
    assert t.loc["Llama-2-7B", "H100-SXM"] == pytest.approx(160, rel=0.01)
    # by hand: k · F · mfu / (2 N_mm), in bits
    m = models.get("Llama-2-7B")
    assert t.loc["Llama-2-7B", "A100-80GB"] == pytest.approx(
        524_288 * 312e12 * 0.5 / (2 * m.matmul_params) * 8 / 1e9)
    # a long prompt adds attention FLOPs: lower rate
    long = kvmath.emission_table(["Llama-3.1-70B"], ["H100"], prompt=32768)
    assert long.iloc[0, 0] < t.loc["Llama-3.1-70B", "H100-SXM"]


def test_link_headroom():
    h = kvmath.link_headroom("Llama-3.1-70B", "H100-SXM", "IB-NDR-400G")
    assert h == pytest.approx(50e9 / float(kv_emission_rate("Llama-3.1-70B", "H100-SXM", mfu=0.5)))
    assert h == pytest.approx(400 / 9.47, rel=0.01)
    assert kvmath.link_headroom("Llama-3.1-70B", "H100-SXM", "IB-NDR-400G", gpus_per_link=8) == \
        pytest.approx(h / 8)
    assert kvmath.link_headroom("Llama-3.1-70B", "H100-SXM", "IB-NDR-400G", dtype="fp8") == \
        pytest.approx(2 * h)
    assert kvmath.link_headroom("Llama-2-7B", "H100-SXM", "100GbE") < 1 < \
        kvmath.link_headroom("Llama-3.1-8B", "H100-SXM", "100GbE")
    with pytest.raises(ValueError, match="gpus_per_link"):
        kvmath.link_headroom("Llama-2-7B", "H100-SXM", "100GbE", gpus_per_link=0)
    with pytest.raises(ValueError, match="mfu"):
        kvmath.link_headroom("Llama-2-7B", "H100-SXM", "100GbE", mfu=1.5)


def test_headroom_predicts_layerwise_exposure():
    # With the prefill at the same MFU (and a short prompt, so attention is negligible), headroom
    # > 1 means the layerwise transfer leaves only ~one layer exposed, < 1 means much more.
    for name, link in (("Llama-3.1-8B", "100GbE"), ("Llama-2-7B", "100GbE"),
                       ("Llama-2-7B", "IB-NDR-400G")):
        h = kvmath.link_headroom(name, "H100-SXM", link)
        r = kvmath.transfer_vs_prefill(name, 512, "H100-SXM", link, flops_efficiency=0.5)
        one_layer = r.whole_one_link / models.get(name).n_layers
        if h > 1.2:
            assert r.layerwise_one_link <= one_layer + 1e-4
        else:
            assert h < 0.8 and r.layerwise_one_link > 5 * one_layer


# ----------------------------------------------------------------------------- plots
def test_plots_draw_every_item():
    ax = kc.plot_kv_bytes_per_token(["GPT-2", "Llama-3.1-8B", "DeepSeek-V3"], dtypes=("bf16", "fp8"))
    assert len(ax.patches) == 6 and "kB" in ax.get_xlabel() and ax.get_title()
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths[-1] == pytest.approx(131.072)
    ax = kc.plot_decode_capacity([("Llama-3.1-8B", "H100-SXM", 1)], contexts=(1024, 4096))
    assert sorted(p.get_height() for p in ax.patches) == [104, 416]
    ax = kc.plot_transfer_times("Llama-3.1-70B", 4096, ["100GbE", "IB-NDR-400G"],
                                reference={"prefill": 0.166})
    assert sorted(p.get_width() for p in ax.patches) == pytest.approx(
        [kv_transfer_time("Llama-3.1-70B", 4096, n) * 1e3 for n in ("IB-NDR-400G", "100GbE")])
    assert "ms" in ax.get_xlabel() and ax.get_xscale() == "log"
    ax = kc.plot_emission_rates(["Llama-2-7B", "Llama-3.1-70B"], ["H100-SXM", "B200"],
                                links=("100GbE",))
    assert len(ax.patches) == 4 and "Gb/s" in ax.get_ylabel()
    assert ax.lines[0].get_ydata()[0] == pytest.approx(100)
    with pytest.raises(ValueError):
        kc.plot_emission_rates([], ["H100-SXM"])
    with pytest.raises(ValueError):
        kc.plot_kv_bytes_per_token([])


# ----------------------------------------------------------------------------- exercises
def test_ch02_exercises_registered_with_right_answers():
    ids = [i for i in exercises.ids() if i.startswith("ch02.")]
    assert len(ids) >= 4
    assert exercises.check("ch02.kv_qwen72b", 2 * 80 * 8 * 128 * 2).ok                  # 327,680
    assert exercises.check("ch02.transfer_8b_8k_100gbe", 8192 * 131_072 / 12.5e9 * 1e3).ok   # 85.9 ms
    assert exercises.check("ch02.batch_8b_a100_4k", 104).ok
    assert exercises.check("ch02.emission_llama2_7b_h100", 160).ok
    assert exercises.check("ch02.kv_qwen72b", None).ok is None


def test_ch02_feedback_helps():
    fb = exercises.check("ch02.emission_llama2_7b_h100", 20.0)          # bytes, not bits
    assert not fb.ok and "bits" in fb.message and "Hint" in fb.message
    fb = exercises.check("ch02.transfer_8b_8k_100gbe", 0.0859)          # seconds, not ms
    assert not fb.ok and "prefix" in fb.message
    fb = exercises.check("ch02.kv_qwen72b", 2 * 80 * 64 * 128 * 2)      # query heads, not KV heads
    assert not fb.ok and "KV heads=8" in fb.message
    fb = exercises.check("ch02.batch_8b_a100_4k", 116)                  # forgot the 90%
    assert not fb.ok and "0.9" in fb.message
