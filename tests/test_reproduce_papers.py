"""Chapter 10's reproductions (pdlib.reproduce): DistServe's SLO scale, Sarathi-Serve's capacity,
Mooncake's bandwidth knee and P:D sweep, Splitwise's cost argument. The simulations run once per
module at the chapter's settings; the tests pin what the papers claim where the simulator agrees,
and pin our own numbers (with the paper's beside them) where it does not."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pdlib import CostModel, hardware, models, sim, workload
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
    # the bracket keeps the first failing rate too: within tol above the passing one
    lo, hi = rp._bracket(ok, 0.5, 16.0, 0.05)
    assert lo <= 3.7 < hi <= lo * 1.05
    # a guess near the answer brackets it by doubling or halving, then bisects: same guarantee,
    # fewer evaluations
    for guess in (2.0, 3.0, 5.0, 9.0):
        calls.clear()
        lo, hi = rp._bracket(ok, 0.5, 16.0, 0.05, guess=guess)
        assert lo <= 3.7 < hi <= lo * 1.05 and len(calls) <= 7
    assert rp._bracket(ok, 0.5, 2.0, 0.05, guess=1.0) == (2.0, math.inf)
    assert rp._bracket(lambda r: False, 0.5, 16.0, 0.05, guess=1.0) == (0.0, 0.5)
    assert rp._bracket(lambda r: False, 1, 2, 0.1) == (0.0, 1)
    assert rp._bracket(lambda r: True, 1, 2, 0.1) == (2, math.inf)


def test_compare_is_one_rule_for_every_paper():
    # ratios are compared by their effect ln(x): 2.95 vs 3.7 is ln 2.95 / ln 3.7 = 0.83 of it
    assert math.log(2.95) / math.log(3.7) == pytest.approx(0.8269, abs=1e-4)
    assert rp.compare(3.7, 2.95) == "reproduced"
    assert rp.compare(2.6, 3.53) == "same direction, larger effect"        # 1.32 of the effect
    assert rp.compare(12.6, 1.5) == "same direction, smaller effect"
    # the old rule ("within a factor of two") called 1.3× a reproduction of 2.6×
    assert rp.compare(2.6, 1.3) == "same direction, smaller effect"
    # a cost ratio of 1.0 is no effect, not "within 25% of 0.8"
    assert rp.compare(0.8, 1.0) == "not reproduced"
    assert rp.compare(0.8, 0.82) == "reproduced" and rp.compare(0.8, 1.1) == "not reproduced"
    assert rp.compare(1.4, 1.01, tie=True) == "no effect within error"
    # quantities: within 25% of the value either way
    assert rp.compare(100, 125, "quantity") == "reproduced"
    assert rp.compare(100, 80, "quantity") == "reproduced"
    assert rp.compare(100, 64, "quantity") == "not reproduced: lower"
    assert rp.compare(1.0, 7.0, "quantity") == "not reproduced: higher"
    assert rp.REPRODUCED_TOL == 0.25
    with pytest.raises(ValueError, match="kind"):
        rp.compare(2.0, 2.0, "size")
    with pytest.raises(ValueError):
        rp.compare(2.0, 0.0)


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
    assert k == 327_680                                       # 2 × 80 layers × 8 KV heads × 128 × 2 B (Llama-2-70B config.json)
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
    sp = rp.SARATHI_PAPER
    # Sarathi-Serve (OSDI 2024): table 3 SLOs, §5.1 budgets and the 2 s median-delay bound,
    # abstract gains, table 2 dataset quantiles, the A100 80GB PCIe machines of §5
    assert sp["p99_tbt"] == {"Mistral-7B-v0.1": {"strict": 0.1, "relaxed": 0.5},
                             "Yi-34B": {"strict": 0.2, "relaxed": 1.0}}
    assert sp["token_budget"] == {"strict": 512, "relaxed": 2048} and sp["max_batch"] == 128
    assert sp["max_median_queue_delay"] == 2.0 and sp["tbt_quantile"] == 0.99
    assert sp["gain"] == {"Mistral-7B-v0.1": 2.6, "Yi-34B": 3.7}
    assert sp["gain_at"]["Yi-34B"] == ("openchat_sharegpt4", "strict")
    assert sp["tradeoff_gain"]["Mistral-7B-v0.1"] == ("openchat_sharegpt4", "strict", 3.5)
    assert sp["datasets"]["openchat_sharegpt4"]["prompt"] == (1730, 5696)
    assert sp["datasets"]["arxiv_summarization"]["prompt"] == (7059, 12985)
    assert {d["gpu"] for d in sp["deployments"].values()} == {"A100-PCIe-80GB"}
    assert sp["deployments"]["Yi-34B"]["tp"] == 2
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
    # DistServe reports up to 12.6× over its workloads (see chapter 10 for why ours is smaller)
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
    # chapter 10's runs: Mistral-7B over the paper's whole grid, Yi-34B on the dataset of its point
    return {"Mistral-7B-v0.1": rp.sarathi_capacity("Mistral-7B-v0.1"),
            "Yi-34B": rp.sarathi_capacity("Yi-34B", datasets=("openchat_sharegpt4",))}


def test_sarathi_workloads_have_table_2_lengths():
    w = rp.sarathi_workload("arxiv_summarization", 4000, 1.0)
    assert np.median(w.prompt) == pytest.approx(7059, rel=0.05)
    assert np.percentile(w.prompt, 90) == pytest.approx(12985, rel=0.05)
    assert w.prompt.max() <= 16384
    assert np.median(w.output) == pytest.approx(208, rel=0.05)
    chat = rp.sarathi_workload("openchat_sharegpt4", 50, 2.0)
    assert np.array_equal(chat.prompt, workload.named("sharegpt", 50, 2.0).prompt)
    with pytest.raises(KeyError, match="openchat_sharegpt4"):
        rp.sarathi_workload("sharegpt", 10, 1.0)


def test_sarathi_meets_pools_every_gap_and_bounds_the_queue():
    w = rp.sarathi_workload("openchat_sharegpt4", 300, 1.4)
    pp = sim.simulate(sim.colocated(model="Mistral-7B-v0.1", gpu="A100-PCIe-80GB", max_batch=128), w)
    p99_all = np.percentile(pp.tbt, 99)
    # the test uses the P99 of ALL gaps (every request's decode tokens pooled) ...
    assert rp.sarathi_meets(pp, p99_all + 1e-9) and not rp.sarathi_meets(pp, p99_all - 1e-9)
    # ... which at this load passes 0.1 s while far fewer than 90% of the requests have their own
    # P99 gap within 0.1 s: a per-request reading (with a TTFT guard) would call this a miss
    assert p99_all <= 0.1 and pp.slo_attainment(p99_tbt=0.1) < 0.8
    # chunked prefill under overload: tiny gaps, a queue that grows: only the delay bound fails it
    ch = sim.simulate(sim.colocated(model="Mistral-7B-v0.1", gpu="A100-PCIe-80GB", scheduler="chunked",
                                    chunk_size=512, max_batch=128),
                      rp.sarathi_workload("openchat_sharegpt4", 300, 8.0))
    assert np.percentile(ch.tbt, 99) < 0.1 and ch.requests.queue_delay.median() > 2.0
    assert not rp.sarathi_meets(ch, 0.1) and rp.sarathi_meets(ch, 0.1, max_median_delay=None)


def test_sarathi_capacity_grid_and_what_it_is_compared_with(sarathi):
    for m, r in sarathi.items():
        t = r["table"]
        g = r["gain"]
        assert len(t) == 4 * t.dataset.nunique() and (g > 1).all()
        assert r["max_gain"] == g.max() and g[r["max_at"]] == r["max_gain"]
        for d in set(t.dataset):
            assert g[d, "strict"] > g[d, "relaxed"]
        assert r["gpu"] == "A100-PCIe-80GB" and r["paper_gain"] == rp.SARATHI_PAPER["gain"][m]
    m7, yi = sarathi["Mistral-7B-v0.1"], sarathi["Yi-34B"]
    assert set(m7["table"].dataset) == set(rp.SARATHI_PAPER["datasets"])
    cap = m7["table"].set_index(["dataset", "slo", "scheduler"]).capacity
    assert (cap["arxiv_summarization"] < cap["openchat_sharegpt4"]).all()       # longer prompts
    # measured: Mistral-7B up to 3.67× (strict, ShareGPT) vs the paper's "2.6×"; Yi-34B 3.08×
    # at the paper's own point (strict, ShareGPT) vs its 3.7×
    assert m7["max_at"] == ("openchat_sharegpt4", "strict") and 3.0 <= m7["max_gain"] <= 4.2
    assert np.isnan(m7["paper_point"])
    assert yi["paper_point"] == yi["gain"]["openchat_sharegpt4", "strict"]
    assert 2.5 <= yi["paper_point"] <= 3.5
    assert rp.compare(yi["paper_gain"], yi["paper_point"]) == "reproduced"
    assert rp.compare(m7["paper_gain"], m7["max_gain"]) == "same direction, larger effect"


def test_sarathi_capacity_rows_meet_their_own_test_and_the_next_rate_does_not(sarathi):
    for r in sarathi.values():
        t = r["table"]
        assert (t.p99_tbt <= t.p99_tbt_slo).all()
        assert (t.median_queue_delay <= rp.SARATHI_PAPER["max_median_queue_delay"]).all()
        chunked = t[t.scheduler.str.startswith("chunked")]
        pp = t[t.scheduler.str.startswith("prefill")]
        # prefill priority fails the TBT target first; chunked prefill the queue bound, far inside
        # its TBT target: the GPU is full
        assert (pp.limited_by == "TBT").all() and (chunked.limited_by == "scheduling delay").all()
        assert (chunked.p99_tbt < 0.7 * chunked.p99_tbt_slo).all()
        assert (chunked.req_attainment == 1.0).all() and (pp.req_attainment < 0.9).all()
    t = sarathi["Mistral-7B-v0.1"]["table"]
    assert list(t[t.scheduler.str.startswith("chunked")].token_budget) == [512, 2048, 512, 2048]
    assert list(t[t.scheduler.str.startswith("prefill")].token_budget) == [8192, 8192, 16384, 16384]


def test_sarathi_capacity_keeps_the_sliding_window_and_full_attention_barely_differs():
    # the default runs Mistral-7B with its 4,096-token window ("GQA-SW", the paper's table 1);
    # full_attention=True drops it. Only attention beyond 4,096 tokens changes: the same
    # capacities here, and windowed gaps never longer than full-attention ones
    kw = dict(n=100, tol=0.2, datasets=("openchat_sharegpt4",))
    win = rp.sarathi_capacity(**kw)["table"]
    full = rp.sarathi_capacity(full_attention=True, **kw)["table"]
    assert list(win.capacity) == list(full.capacity)
    np.testing.assert_allclose(win.p99_tbt, full.p99_tbt, rtol=0.1)
    assert (win.p99_tbt <= full.p99_tbt * (1 + 1e-4)).all()


def test_disaggregated_reproductions_name_their_kv_transfer(monkeypatch):
    # DistServe pulls the whole cache after the prefill (§4.3); Mooncake and Splitwise stream it
    # layer by layer: each reproduction passes its paper's mode, whatever the simulator's default
    seen = []
    real = rp.sim.disaggregated

    def spy(**kw):
        seen.append(kw.get("transfer"))
        return real(**kw)

    monkeypatch.setattr(rp.sim, "disaggregated", spy)
    rp.xpyd_goodput(1, 1, n=40, tol=0.5)
    rp.pool_growth(2.0, max_prefill=1, max_decode=1, n=40)
    rp.distserve_slo_scale(2.0, max_gpus=2, n=40)
    assert seen and set(seen) == {"whole"}
    seen.clear()
    rp.mooncake_pd_ratio(2, n=20, check_load=None)
    rp.splitwise_cost(n=20, tol=0.5)
    assert seen and set(seen) == {"layerwise"}


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
    # whole-cache transfers: measured knee 200 Gb/s (TTFT within 10% of the 400 Gb/s value);
    # Mooncake: ~100 Gb/s. Layer-by-layer: an 8×A100 node emits KV at ~22 Gb/s, so an idle link
    # of 24 Gb/s would hide the stream; with each decode node's NIC shared by the prefill nodes
    # sending into it (pdlib.sim's link model) transfers queue below 100 Gb/s: measured knee 100
    assert 64 <= knee["knee"]["whole"] <= 200
    assert knee["knee"]["layerwise"] == 100 <= knee["knee"]["whole"]
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
    # 5P3D (7P1D without hits), and 7P1D's single decode node no longer keeps up (64% of the best)
    hit = rp.mooncake_pd_ratio(cached_fraction=0.8, check_load=None)
    best = lambda df: df[df["best_0.1"]].pd_ratio.iloc[0]
    assert best(hit) < best(pd_ratio)
    assert 1 <= best(hit) <= 3
    assert (hit.capacity > pd_ratio.capacity).all()
    h = hit.set_index("config")
    assert h.capacity["7P1D"] < 0.8 * h.capacity.max()
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
    with pytest.raises(KeyError, match="token budget"):
        rp.sarathi_capacity(slos={"tight": 0.05})
    with pytest.raises(KeyError, match="no paper deployment"):
        rp.sarathi_capacity("Llama-2-7B")
    with pytest.raises(ValueError):
        rp.mooncake_bandwidth_knee(transfers=("teleport",))
    with pytest.raises(ValueError):
        rp.mooncake_pd_ratio(1)
    with pytest.raises(ValueError):
        rp.splitwise_cost(colocated_machines=0)
