"""pdlib.reproduce: paper results reproduced with the simulator (qualitative pins), the DistServe
latency fit against hand computations, prices, and the shapes of the sweeps."""
from __future__ import annotations

import math

import pytest

from pdlib import reproduce as rp


@pytest.fixture(scope="module")
def distserve():
    return rp.distserve_example()


def test_distserve_disaggregation_doubles_goodput_per_gpu(distserve):
    # DistServe §2.2: colocated 1.6 req/s/GPU, 2P1D 3.3 req/s/GPU (≈ 2×). Ours must land in 1.5–3×.
    ratio = distserve["disaggregated_per_gpu"] / distserve["colocated_per_gpu"]
    assert 1.5 <= ratio <= 3.0
    assert ratio == pytest.approx(distserve["ratio"])
    assert distserve["paper"] == rp.DISTSERVE_PAPER


def test_distserve_best_config_has_more_prefill_than_decode(distserve):
    t = distserve["table"]
    best = t[t.config == distserve["best_config"]].iloc[0]
    # prefill (≈70 ms per 512-token prompt) is the scarce phase: the best split gives it more GPUs
    assert best.n_prefill > best.n_decode
    assert best.per_gpu == pytest.approx(distserve["disaggregated_per_gpu"])
    # as in the paper, one decode instance sustains more req/s than one prefill instance
    assert distserve["decode_only_rps"] > distserve["prefill_only_rps"] > distserve["colocated_per_gpu"]


def test_distserve_table_shape(distserve):
    t = distserve["table"]
    assert list(t.config) == ["1P1D", "1P2D", "2P1D", "1P3D", "2P2D", "3P1D"]
    assert (t.n_gpus == t.n_prefill + t.n_decode).all()
    assert t.rate.to_numpy() == pytest.approx((t.per_gpu * t.n_gpus).to_numpy())
    assert t.vs_colocated.to_numpy() == pytest.approx((t.per_gpu / distserve["colocated_per_gpu"]).to_numpy())
    assert t.best.sum() == 1
    # RunPod Secure Cloud on-demand, read 2026-09-25: A100 80GB SXM at $1.59 per GPU-hour
    assert t.usd_per_hour.to_numpy() == pytest.approx((1.59 * t.n_gpus).to_numpy())


def test_distserve_fits_by_hand():
    # prefill: 18.1 + 0.1019·512 + 7.12e-6·512² = 72.139 ms
    assert rp.distserve_prefill_fit([512]) == pytest.approx(72.13926e-3, rel=1e-6)
    # two prompts in one step: Σ = 1024, Σlen² = 2·512²
    assert rp.distserve_prefill_fit([512, 512]) == pytest.approx((18.1 + 104.3456 + 3.73293) * 1e-3, rel=1e-5)
    # decode: 19.93 + 6.27e-4·(8·544) + 0.0385·8 = 19.93 + 2.728704 + 0.308 = 22.966704 ms
    assert rp.distserve_decode_fit(8, 544) == pytest.approx(22.966704e-3, rel=1e-9)
    # η_W: 819,200 B per token / (2.039e12 B/s · 6.27e-7 s) = 0.6408
    assert rp.distserve_bw_efficiency() == pytest.approx(819200 / (2.039e12 * 6.27e-7), rel=1e-9)
    with pytest.raises(ValueError, match="positive"):
        rp.distserve_prefill_fit([])
    with pytest.raises(ValueError, match="batch"):
        rp.distserve_decode_fit(0, 10)


def test_fit_table_prefill_512_close_to_distserve():
    t = rp.distserve_fit_table().set_index("step")
    # our roofline prefill of 512 tokens is within 10% of DistServe's profiled fit
    assert t.loc["prefill 512", "ratio"] == pytest.approx(1.0, abs=0.1)
    # calibrating η_W to the fit's context slope makes our decode track it within 5%
    cal = rp.distserve_fit_table(cost_kwargs={"bw_efficiency": rp.distserve_bw_efficiency()}).set_index("step")
    assert cal.loc["decode batch 1 @ 544", "ratio"] == pytest.approx(1.0, abs=0.05)


def test_configs_prices_and_costs():
    assert rp.xpyd_configs(3) == [(1, 1), (1, 2), (2, 1)]
    assert len(rp.xpyd_configs(5)) == 10
    with pytest.raises(ValueError, match="max_gpus"):
        rp.xpyd_configs(1)
    assert rp.config_name(2, 1) == "2P1D"
    # one A100 prefill + two L40S decode GPUs at $1.59 and $1.09 per hour (RunPod, 2026-09-25)
    assert rp.config_price("A100-80GB", "L40S", 1, 2) == pytest.approx(1.59 + 2 * 1.09)
    with pytest.raises(KeyError, match="no price"):
        rp.config_price("MI300X", "A100-80GB", 1, 1)     # no price on the dated list
    # $4.5/h serving 10 req/s × 64 tokens = 2,304,000 tokens/h → $1.953125 per million
    assert rp.cost_per_million_tokens(10, 64, 4.5) == pytest.approx(4.5 / 2.304)
    with pytest.raises(ValueError):
        rp.cost_per_million_tokens(0, 64, 4.5)


def test_pd_ratio_sweep_shapes_and_best_ratio_moves():
    df = rp.pd_ratio_sweep(((512, 64), (256, 256)), max_gpus=3)
    assert len(df) == 6
    assert set(df.columns) >= {"prompt", "output", "shape", "config", "n_prefill", "n_decode",
                               "n_gpus", "rate", "per_gpu", "pd_ratio", "best"}
    assert (df.groupby("shape").best.sum() == 1).all()
    best = df[df.best].set_index("shape")
    # short outputs want more prefill GPUs, long outputs more decode GPUs
    assert best.loc["512/64", "pd_ratio"] > 1 > best.loc["256/256", "pd_ratio"]


def test_pool_growth_longer_prompts_need_more_prefill():
    base = rp.pool_growth(10.0, max_prefill=2, max_decode=2)
    assert len(base) == 4 and base.cheapest.sum() == 1
    assert base.attainment.between(0, 1).all()
    assert base[base.cheapest].config.item() == "1P1D"
    longer = rp.pool_growth(10.0, prompt=1024, max_prefill=2, max_decode=2).set_index("config")
    assert not longer.loc["1P1D", "meets"]
    assert longer.loc["2P1D", "attainment"] > longer.loc["1P2D", "attainment"]


def test_decode_on_l40s_misses_tpot():
    t = rp.decode_tpot_table(("A100-80GB", "L40S"), batches=(1, 8))
    step = t.set_index(["gpu", "batch"]).step_s
    # weight streaming dominates at batch 1: the time ratio is about the bandwidth ratio 2039/864
    assert step["L40S", 1] / step["A100-80GB", 1] == pytest.approx(2.039e12 / 864e9, rel=0.05)
    assert step["L40S", 8] > rp.DISTSERVE_SLO["tpot"] > step["A100-80GB", 8]
    assert (t[t.gpu == "L40S"].mem_type == "GDDR6").all()
    hwdf = rp.decode_hardware((("A100-80GB", "A100-80GB"), ("A100-80GB", "L40S")), max_gpus=2).set_index("decode_gpu")
    assert hwdf.loc["L40S", "per_gpu"] < hwdf.loc["A100-80GB", "per_gpu"] / 3
    a = hwdf.loc["A100-80GB"]
    assert a.req_per_usd == pytest.approx(3600 * a.rate / a.usd_per_hour)
    assert math.isclose(a.usd_per_m_tokens, rp.cost_per_million_tokens(a.rate, 64, a.usd_per_hour))
