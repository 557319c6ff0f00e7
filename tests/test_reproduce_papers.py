"""Chapter 09's reproductions (pdlib.reproduce): DistServe's SLO scale, Sarathi-Serve's capacity,
Mooncake's bandwidth knee and P:D sweep, Splitwise's cost argument. The simulations run once per
module at the chapter's settings; the tests pin what the papers claim where the simulator agrees,
and pin our own numbers (with the paper's beside them) where it does not."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pdlib import CostModel, hardware, models
from pdlib import reproduce as rp


# ---------------------------------------------------------------- helpers, by hand
def test_scale_at_attainment_is_the_ceil_quantile():
    need = np.array([2.0, 0.5, np.inf, 1.0])
    assert rp.scale_at_attainment(need, 0.5) == 1.0          # 2 of 4 requests need ≤ 1.0
    assert rp.scale_at_attainment(need, 0.75) == 2.0
    assert rp.scale_at_attainment(need, 1.0) == math.inf     # one request was rejected
    assert rp.scale_at_attainment(np.linspace(0.01, 1, 100), 0.9) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        rp.scale_at_attainment([], 0.9)


def test_max_rate_bisects_geometrically():
    calls = []

    def ok(rate):
        calls.append(rate)
        return rate <= 3.7

    r = rp._max_rate(ok, 0.5, 16.0, 0.05)
    assert 3.7 / 1.05 <= r <= 3.7
    assert len(calls) <= 2 + math.ceil(math.log2(math.log(32) / math.log(1.05)))
    assert rp._max_rate(lambda r: False, 1, 2, 0.1) == 0.0
    assert rp._max_rate(lambda r: True, 1, 2, 0.1) == 2.0
    with pytest.raises(ValueError):
        rp._max_rate(ok, 2.0, 1.0, 0.1)


def test_bandwidth_knee_definition():
    # within 10% of the 8 Gb/s value (1.0) from 4 Gb/s on
    assert rp.bandwidth_knee([1, 2, 4, 8], [10, 5, 1.05, 1.0]) == 4
    # a dip into the band that leaves it again does not count: the knee is the last entry
    assert rp.bandwidth_knee([1, 2, 4, 8], [10, 1.0, 2.0, 1.0]) == 8
    assert rp.bandwidth_knee([1, 2], [1.0, 1.0]) == 1
    with pytest.raises(ValueError):
        rp.bandwidth_knee([2, 1], [1, 1])


def test_gbps_link_and_kv_emission_by_hand():
    assert rp.gbps_link(100).bandwidth == pytest.approx(hardware.link("100GbE").bandwidth)
    with pytest.raises(ValueError):
        rp.gbps_link(0)
    cm = CostModel("Llama-2-70B", "A100-80GB", tp=8)
    k = models.get("Llama-2-70B").kv_bytes_per_token()
    assert k == 327_680                                       # FACTS §3
    want = 8 * 12_000 * k / cm.prefill(12_000).time / 1e9
    assert rp.kv_emission_gbps(12_000) == pytest.approx(want)
    # a faster prefill emits KV faster: an H100 node needs more network than an A100 node
    assert rp.kv_emission_gbps(12_000, gpu="H100-SXM") > rp.kv_emission_gbps(12_000)


def test_without_sliding_window_keeps_step_times_below_the_window():
    spec = rp.without_sliding_window("Mistral-7B-v0.1")
    assert spec.sliding_window is None and models.get("Mistral-7B-v0.1").sliding_window == 4096
    full, win = CostModel(spec, "A100-80GB"), CostModel("Mistral-7B-v0.1", "A100-80GB")
    for p in (512, 2730, 4096):                       # prompts of the arXiv trace are < 4,096
        assert full.prefill(p).time == pytest.approx(win.prefill(p).time, rel=1e-12)
    assert full.prefill(2048, context=6000).time > win.prefill(2048, context=6000).time
    assert rp.without_sliding_window("Llama-2-7B") == models.get("Llama-2-7B")


def test_paper_constants():
    assert rp.DISTSERVE_SLO_SCALE_PAPER["tighter_slo"] == 12.6
    assert rp.SARATHI_PAPER["p99_tbt"] == {"strict": 0.1, "relaxed": 0.5}
    assert rp.SARATHI_PAPER["token_budget"] == {"strict": 512, "relaxed": 2048}
    assert rp.SARATHI_PAPER["capacity_gain"] == 2.6
    assert rp.MOONCAKE_PAPER["knee_gbps"] == 100 and rp.MOONCAKE_PAPER["ttft_slo"] == 30
    assert set(rp.__all__) >= {"distserve_slo_scale", "sarathi_capacity", "mooncake_bandwidth_knee",
                               "mooncake_pd_ratio", "splitwise_cost"}


# ---------------------------------------------------------------- DistServe: SLO scale
@pytest.fixture(scope="module")
def slo_scale():
    return rp.distserve_slo_scale()


def test_slo_scale_attainment_rises_with_the_scale(slo_scale):
    c = slo_scale["curve"]
    for col in ("colocated", "disaggregated"):
        assert np.all(np.diff(c[col]) >= 0)
        assert c[col].iloc[-1] == 1.0                        # at 2× the SLO everyone meets it
        assert c[col].iloc[0] == 0.0                         # at 0.4×: TPOT 16 ms < a decode step
    # the disaggregated curve is above the colocated one everywhere
    assert (c.disaggregated >= c.colocated).all()


def test_slo_scale_disaggregated_meets_a_tighter_slo(slo_scale):
    # measured: 2P1D reaches 90% at scale 0.61, three colocated GPUs at 0.91 (1.48×);
    # DistServe reports up to 12.6× over its workloads (see chapter 09 for why ours is smaller)
    assert slo_scale["best_config"] == "2P1D"
    assert slo_scale["disaggregated_scale"] == pytest.approx(0.613, abs=0.03)
    assert slo_scale["colocated_scale"] == pytest.approx(0.906, abs=0.05)
    assert 1.2 <= slo_scale["tighter"] <= 2.5
    assert slo_scale["tighter"] < slo_scale["paper"]["tighter_slo"]
    t = slo_scale["configs"].set_index("config").scale_at_target
    assert t["1P2D"] > 5 and t["1P3D"] > 5                   # too few prefill GPUs: never near 90%


# ---------------------------------------------------------------- Sarathi-Serve: capacity
@pytest.fixture(scope="module")
def sarathi():
    return rp.sarathi_capacity()


def test_chunked_prefill_beats_prefill_priority_on_p99_tbt_capacity(sarathi):
    t = sarathi["table"].set_index(["slo", "scheduler"]).capacity
    for level in ("strict", "relaxed"):
        assert t[level, "chunked (Sarathi-Serve)"] > t[level, "prefill-priority (vLLM)"] > 0
    # measured: strict 5.19 vs 1.19 req/s (4.4×), relaxed 5.19 vs 3.08 (1.7×); paper 2.6× (Mistral-7B)
    assert 2.5 <= sarathi["gain"]["strict"] <= 6.0
    assert 1.3 <= sarathi["gain"]["relaxed"] <= 2.6
    assert sarathi["gain"]["strict"] > sarathi["gain"]["relaxed"]
    # a relaxed target lets the stalling scheduler run at a higher load
    assert t["relaxed", "prefill-priority (vLLM)"] > t["strict", "prefill-priority (vLLM)"]


def test_sarathi_capacity_keeps_the_sliding_window_and_full_attention_barely_differs():
    # the default runs Mistral-7B with its 4,096-token window; full_attention=True drops it. arXiv
    # prompts are shorter than the window, so only decode tokens past position 4,096 see fewer
    # keys: the same capacities, step times that differ in the 6th digit
    win = rp.sarathi_capacity(n=100, tol=0.2)["table"]
    full = rp.sarathi_capacity(n=100, tol=0.2, full_attention=True)["table"]
    assert list(win.capacity) == list(full.capacity)
    np.testing.assert_allclose(win.p99_tbt, full.p99_tbt, rtol=1e-4)
    assert (win.p99_tbt <= full.p99_tbt).all() and (win.p99_tbt < full.p99_tbt).any()


def test_sarathi_capacity_rows_meet_their_own_test(sarathi):
    t = sarathi["table"]
    assert (t.p99_tbt <= t.p99_tbt_slo).all()
    assert (t.median_queue_delay <= rp.SARATHI_PAPER["max_median_queue_delay"]).all()
    chunked = t[t.scheduler.str.startswith("chunked")]
    # chunked prefill stays far inside the TBT target: its capacity ends where the queue grows
    assert (chunked.p99_tbt < 0.5 * chunked.p99_tbt_slo).all()
    assert list(chunked.token_budget) == [512, 2048]


# ---------------------------------------------------------------- Mooncake: bandwidth knee
@pytest.fixture(scope="module")
def knee():
    return rp.mooncake_bandwidth_knee()


def test_mooncake_ttft_never_falls_when_bandwidth_drops(knee):
    for _, g in knee["table"].groupby("transfer"):
        g = g.sort_values("gbps")
        assert np.all(np.diff(g.ttft_mean) <= 1e-9)
        assert np.all(np.diff(g.ttft_p90) <= 1e-9)
        assert (g.finished == 400).all()
    t = knee["table"].pivot(index="gbps", columns="transfer", values="ttft_mean")
    assert (t.layerwise <= t.whole + 1e-9).all()              # streaming never hurts


def test_mooncake_knee_in_range(knee):
    # whole-cache transfers: measured knee 128 Gb/s (TTFT within 10% of the 400 Gb/s value);
    # Mooncake: ~100 Gb/s. Layer-by-layer: an 8×A100 node emits KV at ~22 Gb/s, below the
    # slowest link swept, so the knee is the bottom of the sweep.
    assert 64 <= knee["knee"]["whole"] <= 200
    assert knee["knee"]["layerwise"] == 24
    assert 15 <= knee["emission_gbps"] <= 30 < knee["knee"]["whole"]
    assert knee["kv_gb_mean"] == pytest.approx(
        12_035 * 327_680 / 1e9, rel=0.15)        # the trace's mean prompt × KV bytes per token


# ---------------------------------------------------------------- Mooncake: P:D ratio
@pytest.fixture(scope="module")
def pd_ratio():
    return rp.mooncake_pd_ratio()


def test_mooncake_pd_sweep_best_ratio(pd_ratio):
    df = pd_ratio
    assert list(df.config) == [f"{p}P{8 - p}D" for p in range(1, 8)]
    # capacity grows with every prefill node: the roofline makes these long prompts prefill-bound
    assert np.all(np.diff(df.capacity) > 0)
    for t in (0.1, 0.2, 0.3):
        best = df[df[f"best_{t:g}"]]
        assert len(best) == 1
        # measured: 7P1D for every TBT target (Mooncake: ≈ 1:1 at 16 nodes)
        assert 3 <= best.pd_ratio.iloc[0] <= 7
    assert (df.tbt_p90 < 0.1).all()
    # the saturation argument holds: at 90% of its capacity every split meets Mooncake's SLO
    # (TTFT ≤ 30 s, TBT ≤ 0.1 s) for ≥ 90% of requests (measured: 97.8% for 1P7D, 100% for most)
    assert (df.attainment_check >= 0.9).all()


def test_mooncake_prefix_hits_move_the_best_split_toward_decode(pd_ratio):
    # with 80% of every prompt cached the prefill pool has little left to compute: measured best
    # 5P3D (7P1D without hits), and 7P1D's single decode node misses the 0.1 s TBT target
    hit = rp.mooncake_pd_ratio(cached_fraction=0.8, check_load=None)
    best = lambda df: df[df["best_0.1"]].pd_ratio.iloc[0]
    assert best(hit) < best(pd_ratio)
    assert 1 <= best(hit) <= 3
    assert (hit.capacity > pd_ratio.capacity).all()
    assert not hit.set_index("config")["meets_0.1"]["7P1D"]
    assert hit.attrs["cached_fraction"] == 0.8 and np.isnan(hit.attainment_check).all()


# ---------------------------------------------------------------- Splitwise: cost
@pytest.fixture(scope="module")
def splitwise():
    return rp.splitwise_cost()


def test_splitwise_heterogeneous_pools_per_dollar(splitwise):
    b = splitwise["best"].set_index("design")
    vs = splitwise["vs"].set_index("against")
    het = b.loc["split H100→A100"]
    # decode is not the bottleneck here: A100 decode serves what H100 decode serves ...
    assert het.rate == pytest.approx(b.loc["split H100/H100", "rate"], rel=0.05)
    # ... for less money, so it beats every homogeneous split and the all-A100 cluster per dollar
    for other in ("split H100/H100", "split A100/A100", "colocated A100"):
        assert vs.loc[other, "req_per_usd_ratio"] > 1.1
    assert vs.loc["split H100/H100", "cost_ratio"] == pytest.approx(
        (2 * 3.49 + 1.59) / (3 * 3.49), rel=1e-9)            # catalog prices, 8 GPUs a machine
    # against colocated H100 the win is small: measured 1.16× requests per dollar (1.01× the
    # throughput at 0.87× the cost) vs Splitwise's 1.4× throughput at 0.8× cost (1.75×); the
    # goodputs come from a bisection to ±10%, so only the range is pinned
    assert 0.85 <= vs.loc["colocated H100", "req_per_usd_ratio"] <= 1.3
    paper = splitwise["paper"]
    assert vs.loc["colocated H100", "req_per_usd_ratio"] < paper["throughput_ratio"] / paper["cost_ratio"]
    t = splitwise["table"]
    assert t.req_per_usd.to_numpy() == pytest.approx((3600 * t.rate / t.usd_per_hour).to_numpy())


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        rp.distserve_slo_scale(0)
    with pytest.raises(KeyError):
        rp.sarathi_capacity(slos={"tight": 0.05})
    with pytest.raises(ValueError):
        rp.mooncake_bandwidth_knee(transfers=("teleport",))
    with pytest.raises(ValueError):
        rp.mooncake_pd_ratio(1)
    with pytest.raises(ValueError):
        rp.splitwise_cost(colocated_machines=0)
