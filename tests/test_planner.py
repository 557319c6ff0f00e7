"""pdlib.planner: goodput read off a rate sweep, budgets, SLO maps, and the qualitative results of
chapter 09 (issue 6: the SLO map has regions won by each architecture; a slower link never lowers
TTFT)."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdlib import hardware, planner, reproduce, sim, workload
from pdlib.planner import config_name

H100 = "H100-SXM"


# ---------------------------------------------------------------- helpers
def _fake_sweep(cands, rates_per_cand, attain_per_cand, n=20):
    """A Sweep whose attainment of {"ttft": 1.0} at each rate is exactly the given fraction:
    request j meets TTFT ≤ 1 s iff j < round(a·n)."""
    data = []
    for rates, att in zip(rates_per_cand, attain_per_cand):
        ttft = np.array([[0.5 if j < round(a * n) else 2.0 for j in range(n)] for a in att])
        nan = np.full_like(ttft, np.nan)
        data.append({"ttft": ttft, "tpot": nan.copy(), "p99_tbt": nan.copy(), "max_tbt": nan.copy(),
                     "finished": np.ones_like(ttft, dtype=bool)})
    return planner.Sweep(list(cands), [np.asarray(r, float) for r in rates_per_cand], data,
                         [np.asarray(r, float) for r in rates_per_cand])


# ---------------------------------------------------------------- deployment arithmetic, imports
def test_deployment_arithmetic_lives_in_planner_and_reproduce_reexports_it():
    assert planner.xpyd_configs(4) == [(1, 1), (1, 2), (2, 1), (1, 3), (2, 2), (3, 1)]
    assert planner.config_name(3, 1) == "3P1D"
    # RunPod Secure Cloud, 2026-09-25: A100-80GB $1.59 per GPU-hour
    assert planner.config_price("A100-80GB", "A100-80GB", 2, 1) == pytest.approx(3 * 1.59)
    assert planner.cost_per_million_tokens(1.0, 1e6 / 3600, 2.0) == pytest.approx(2.0)
    for name in ("xpyd_configs", "config_name", "config_price", "cost_per_million_tokens"):
        assert getattr(reproduce, name) is getattr(planner, name)
        assert name in planner.__all__ and name in reproduce.__all__


@pytest.mark.parametrize("module", ["pdlib.planner", "pdlib.reproduce"])
def test_planner_does_not_import_reproduce(module):
    # arrows point sim -> planner -> reproduce: a fresh interpreter importing the planner must not
    # load pdlib.reproduce (and importing reproduce first must not hit a cycle)
    code = (f"import sys, {module}; import pdlib.planner; "
            "print('pdlib.reproduce' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    loaded_reproduce, loaded_torch = out.stdout.split()
    assert loaded_reproduce == ("True" if module == "pdlib.reproduce" else "False")
    assert loaded_torch == "False"


def _units():
    col = planner.colocated_candidates("Llama-3.1-8B", gpus=(H100,), tps=(1,), schedulers=("chunked",),
                                       chunk_sizes=(512,))
    dis = planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=3, ratios=((2, 1),))
    return col + dis


# ---------------------------------------------------------------- candidates and arithmetic
def test_candidates_skip_what_does_not_fit_and_price_units():
    c = planner.colocated_candidates("Llama-3.1-70B", gpus=(H100,), tps=(1, 2, 4, 8), schedulers=("continuous",))
    # 141 GB of BF16 weights: tp1 does not fit an 80 GB card; tp2 fits but not with 100k tokens of KV
    assert [x.params["tp"] for x in c] == [2, 4, 8]
    c = planner.colocated_candidates("Llama-3.1-70B", gpus=(H100,), tps=(2, 4), schedulers=("continuous",),
                                     min_kv_tokens=100_000)
    assert [x.params["tp"] for x in c] == [4]
    price = hardware.gpu(H100).price_per_hour
    assert c[0].n_gpus == 4 and c[0].usd_per_hour == pytest.approx(4 * price)
    # xPyD units: reduced ratios only (no 2P2D), within the GPU cap
    d = planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=4)
    names = [x.name.split()[0] for x in d]
    assert names == ["1P1D", "1P2D", "2P1D", "1P3D", "3P1D"]
    two_one = d[2]
    assert two_one.n_gpus == 3 and two_one.usd_per_hour == pytest.approx(3 * price)
    mixed = planner.disaggregated_candidates("Llama-3.1-8B", prefill_gpus=(H100,), decode_gpus=("A100-80GB",),
                                             prefill_tps=(2,), max_unit_gpus=5, ratios=((2, 1),))
    assert len(mixed) == 1 and mixed[0].n_gpus == 5
    assert mixed[0].usd_per_hour == pytest.approx(4 * price + hardware.gpu("A100-80GB").price_per_hour)
    assert mixed[0].params["parallel_links"] == 2                   # one NIC per prefill GPU
    assert mixed[0].params["decode_links"] == 1                     # ... and per decode GPU
    # the KV moves after the prefill by default (vLLM's NixlConnector), layer by layer on request
    assert {x.params["transfer"] for x in d + mixed} == {"whole"}
    assert {x.cluster().transfer for x in d} == {"whole"}
    lw = planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=2, transfer="layerwise")
    assert [x.cluster().transfer for x in lw] == ["layerwise"]
    # an unpriced GPU: NaN price, usable with a GPU budget
    assert math.isnan(planner.colocated_candidates("Llama-3.1-8B", gpus=("MI300X",), tps=(1,))[0].usd_per_hour)


def test_gpu_value_table_by_hand_and_unpriced_cards_say_so():
    t = planner.gpu_value_table(("H100-SXM", "L40S", "A100-80GB", "L4")).set_index("gpu")
    # RunPod Secure Cloud, 2026-09-25: H100 $3.49, L40S $1.09, A100 $1.59; L4 not on that list
    assert t.loc["H100-SXM", "tflops_per_usd"] == pytest.approx(989 / 3.49)
    assert t.loc["L40S", "tflops_per_usd"] == pytest.approx(362 / 1.09)
    assert t.loc["A100-80GB", "gb_per_s_per_usd"] == pytest.approx(2039 / 1.59)
    # the consequence the old prices hid: per FLOP/s-dollar the L40S beats the H100 (a prefill
    # card), per byte/s-dollar it is still the worst of the three (not a decode card)
    assert t.loc["L40S", "tflops_per_usd"] > t.loc["H100-SXM", "tflops_per_usd"] > t.loc["A100-80GB", "tflops_per_usd"]
    assert t.loc["L40S", "gb_per_s_per_usd"] < t.loc["H100-SXM", "gb_per_s_per_usd"] < t.loc["A100-80GB", "gb_per_s_per_usd"]
    assert t.loc["L4", "price_date"] == planner.NOT_PRICED == "not priced"
    assert math.isnan(t.loc["L4", "usd_per_hour"]) and t.loc["L4", "tflops"] == 121
    html = t.style.format(na_rep=planner.NOT_PRICED).to_html()
    assert "not priced" in html and "nan" not in html.lower()
    assert len(planner.gpu_value_table()) == len(hardware.gpu_names())
    with pytest.raises(KeyError, match="H100-SXM"):
        planner.gpu_value_table(("H800",))


def test_goodput_interpolation_and_budget_arithmetic_by_hand():
    col, dis = _units()                               # 1 GPU at 3.49 $/h, 3 GPUs at 10.47 $/h
    sw = _fake_sweep([col, dis], [[1, 2, 4], [3, 6, 12]], [[1.0, 0.95, 0.5], [1.0, 1.0, 0.7]])
    p = planner.plan(sw, {"ttft": 1.0}, target=0.9, budget_gpus=16)
    t = p.table.set_index("name")
    # colocated: crossing between 2 (0.95) and 4 (0.5): 2 + 0.05/0.45 · 2 = 2.2222 req/s
    g_col = 2 + 0.05 / 0.45 * 2
    # disaggregated: between 6 (1.0) and 12 (0.7): 6 + 0.1/0.3 · 6 = 8 req/s on 3 GPUs
    assert t.loc[col.name, "goodput"] == pytest.approx(g_col)
    assert t.loc[dis.name, "goodput"] == pytest.approx(8.0)
    assert t.loc[dis.name, "goodput_per_gpu"] == pytest.approx(8 / 3)
    assert t.loc[dis.name, "goodput_per_usd"] == pytest.approx(3600 * 8 / 10.47)
    assert t.loc[col.name, "attainment"] == pytest.approx(0.95) and t.loc[col.name, "rate_met"] == 2
    # 16 GPUs: 16 colocated replicas, 5 xPyD replicas (15 GPUs)
    assert t.loc[col.name, "replicas"] == 16 and t.loc[dis.name, "replicas"] == 5
    assert t.loc[dis.name, "deployment_gpus"] == 15
    assert t.loc[dis.name, "deployment_goodput"] == pytest.approx(40.0)
    assert t.loc[dis.name, "deployment_usd_per_hour"] == pytest.approx(5 * 10.47)
    assert p.best("per_gpu")["name"] == dis.name                  # 8/3 = 2.67 > 2.22 req/s/GPU
    assert p.best("per_gpu", arch="colocated")["name"] == col.name
    assert p.best("per_usd")["goodput_per_usd"] == pytest.approx(3600 * 8 / 10.47)
    assert p.best("deployment")["name"] == dis.name               # 40 > 16 · 2.22 = 35.6
    # a dollar budget: floor(50 / 10.47) = 4 replicas, floor(50 / 3.49) = 14
    pu = planner.plan(sw, {"ttft": 1.0}, budget_usd=50.0).table.set_index("name")
    assert pu.loc[dis.name, "replicas"] == 4 and pu.loc[col.name, "replicas"] == 14
    # censoring at both ends of the grid
    sw2 = _fake_sweep([col, dis], [[1, 2], [1, 2]], [[0.5, 0.2], [1.0, 0.95]])
    t2 = planner.plan(sw2, {"ttft": 1.0}).table.set_index("name")
    assert t2.loc[col.name, "goodput"] == 0 and t2.loc[col.name, "censored"] == "below grid"
    assert t2.loc[dis.name, "goodput"] == 2 and t2.loc[dis.name, "censored"] == "above grid"


def test_best_per_gpu_picks_the_highest_and_a_too_small_budget_is_refused():
    col, dis = _units()
    sw = _fake_sweep([col, dis], [[1, 2, 4], [3, 6, 12]], [[1.0, 1.0, 0.5], [1.0, 1.0, 0.7]])
    p = planner.plan(sw, {"ttft": 1.0}, budget_gpus=2)            # the 3-GPU unit does not fit
    g_col = 2 + 0.1 / 0.5 * 2                                    # 2.4 req/s/GPU
    assert p.best("per_gpu")["goodput_per_gpu"] == pytest.approx(g_col)
    assert not p.table.set_index("name").loc[dis.name, "fits_budget"]
    with pytest.raises(ValueError, match="no candidate of arch 'disaggregated'"):
        p.best("per_gpu", arch="disaggregated")
    with pytest.raises(ValueError, match="below the smallest unit.*needs 1 GPUs"):
        planner.plan(sw, {"ttft": 1.0}, budget_usd=1.0)


def test_bad_input_errors_are_clear():
    with pytest.raises(KeyError, match="unknown GPU 'H999'.*H100-SXM"):
        planner.colocated_candidates("Llama-3.1-8B", gpus=("H999",))
    with pytest.raises(KeyError, match="unknown GPU"):
        planner.disaggregated_candidates("Llama-3.1-8B", decode_gpus=("nope",))
    with pytest.raises(KeyError, match="allowed: continuous, chunked"):
        planner.colocated_candidates("Llama-3.1-8B", schedulers=("static",))
    with pytest.raises(ValueError, match="max_unit_gpus"):
        planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=1)
    with pytest.raises(ValueError, match="no candidates"):
        planner.sweep([], lambda r: workload.poisson(rate=r, n=10, prompt=10, output=2))
    with pytest.raises(ValueError, match="candidate list is empty"):
        planner.plan([], {"ttft": 1.0}, workload_fn=lambda r: None)
    col, dis = _units()
    sw = _fake_sweep([col, dis], [[1, 2], [1, 2]], [[1.0, 0.5], [1.0, 0.5]])
    with pytest.raises(ValueError, match="budget of 2 GPUs is below the smallest unit"):
        planner.plan(_fake_sweep([dis], [[1, 2]], [[1.0, 0.5]]), {"ttft": 1.0}, budget_gpus=2)
    with pytest.raises(ValueError, match=r"below the smallest unit.*3\.49 USD"):
        planner.plan(sw, {"ttft": 1.0}, budget_usd=2.0)
    with pytest.raises(ValueError, match="not both"):
        planner.plan(sw, {"ttft": 1.0}, budget_gpus=4, budget_usd=10.0)
    with pytest.raises(KeyError, match="unknown SLO metric.*allowed: ttft, tpot, p99_tbt, max_tbt"):
        planner.plan(sw, {"latency": 1.0})
    with pytest.raises(ValueError, match="target"):
        planner.plan(sw, {"ttft": 1.0}, target=1.5)


# ---------------------------------------------------------------- against the simulator
def test_sweep_goodput_agrees_with_bisection():
    cand = planner.colocated_candidates("Llama-3.1-8B", gpus=(H100,), tps=(1,), schedulers=("chunked",),
                                        chunk_sizes=(512,))[0]
    wl_fn = lambda rate: workload.poisson(rate=rate, n=200, prompt=1024, output=64, seed=1)  # noqa: E731
    slo = {"ttft": 0.3, "tpot": 0.015}
    ref = sim.goodput(cand.cluster(), wl_fn, slo, lo=1.0, hi=80.0, tol=0.02)
    # default grid: the bisection's crossing lies between the last rate met and the next grid rate
    sw = planner.sweep([cand], wl_fn, n_rates=10, stop_slo=slo, stop_below=0.9)
    ours = planner.plan(sw, slo).table.iloc[0]
    assert ours.censored == "" and ref.rate > 0
    nxt = sw.rates[0][list(sw.rates[0]).index(ours.rate_met) + 1]
    assert ours.rate_met <= ours.goodput <= ref.rate <= nxt * 1.02
    # the sweep stopped at the first miss: fewer simulations than grid points
    assert len(sw.rates[0]) < len(sw.grids[0])
    # refinement bisects the crossing interval in log rate: three steps shrink a grid step s to s^(1/8)
    ref3 = planner.sweep([cand], wl_fn, n_rates=10, stop_slo=slo, stop_below=0.9, refine=slo, refine_steps=3)
    assert len(ref3.rates[0]) == len(sw.rates[0]) + 3 and np.all(np.diff(ref3.rates[0]) > 0)
    assert planner.plan(ref3, slo).table.goodput.iloc[0] == pytest.approx(ref.rate, rel=0.06)
    # a fine grid around the crossing (steps of ~6%) agrees with the bisection within 8%
    fine = planner.sweep([cand], wl_fn, rates=np.geomspace(25, 50, 13), stop_slo=slo, stop_below=0.9)
    assert planner.plan(fine, slo).table.goodput.iloc[0] == pytest.approx(ref.rate, rel=0.08)


def test_slower_link_never_lowers_ttft():
    links = ["100GbE", "IB-HDR-200G", "IB-NDR-400G", "IB-XDR-800G", "NVLink4"]
    assert sorted(links, key=lambda n: hardware.link(n).bandwidth) == links
    w = workload.poisson(rate=3.0, n=60, prompt=workload.uniform(1024, 6144), output=32, seed=2)
    cands = planner.disaggregated_candidates("Llama-2-7B", links=links, max_unit_gpus=2)
    assert [c.params["link"] for c in cands] == links
    mean, p90 = [], []
    for c in cands:
        ttft = sim.simulate(c.cluster(), w).requests.ttft
        mean.append(ttft.mean())
        p90.append(ttft.quantile(0.9))
    # slowest link first: TTFT never rises as the link gets faster
    assert all(a >= b - 1e-12 for a, b in zip(mean, mean[1:])), mean
    assert all(a >= b - 1e-12 for a, b in zip(p90, p90[1:])), p90
    assert mean[0] > 1.5 * mean[-1]                   # and 100 GbE costs Llama-2-7B's big KV a lot


@pytest.fixture(scope="module")
def chapter_sweep():
    """Chapter 09's setup with the units that win some cell of its SLO map (the others never do)."""
    keep = {"chunked-256 tp4 H100-SXM", "chunked-512 tp8 H100-SXM", "2P1D tp4/tp4 H100-SXM IB-NDR-400G",
            "2P1D tp4/tp8 H100-SXM IB-NDR-400G"}
    cands = [c for c in planner.head_to_head_candidates(conditional=False) if c.name in keep]
    assert len(cands) == 4
    return planner.head_to_head_sweep(cands)


def test_slo_map_has_regions_won_by_each_architecture(chapter_sweep):
    m = planner.slo_map(chapter_sweep, [0.25, 1.0, 4.0], [0.01, 0.015, 0.05, 0.1])
    cell = m.set_index(["ttft", "tpot"])
    # strict TPOT, relaxed TTFT: disaggregation, by a wide margin (a decode pool never prefills)
    assert cell.loc[(1.0, 0.01), "winner"] == "disaggregated" and cell.loc[(1.0, 0.01), "ratio"] > 2
    assert cell.loc[(4.0, 0.015), "winner"] == "disaggregated"
    # relaxed TPOT (the chapter's chat SLO and looser): chunked prefill, colocated
    assert cell.loc[(1.0, 0.05), "winner"] == "colocated" and cell.loc[(1.0, 0.05), "ratio"] < 0.9
    assert cell.loc[(0.25, 0.1), "winner"] == "colocated"
    assert {"colocated", "disaggregated"} <= set(m.winner)
    # the map is read off stored arrays: its goodputs equal the plan's for the same SLO
    p = planner.plan(chapter_sweep, {"ttft": 1.0, "tpot": 0.05})
    assert cell.loc[(1.0, 0.05), "best_colocated"] == pytest.approx(p.best("per_gpu", "colocated").goodput_per_gpu)


def test_planner_picks_more_prefill_for_long_prompts_and_more_decode_for_long_outputs():
    cands = planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=3)      # 1P1D, 1P2D, 2P1D
    slo = {"ttft": 1.0, "tpot": 0.02}
    best = {}
    for label, (p_len, o_len) in {"prefill-heavy": (2048, 16), "decode-heavy": (128, 512)}.items():
        fn = lambda rate, p=p_len, o=o_len: workload.poisson(rate=rate, n=150, prompt=p, output=o, seed=0)  # noqa: E731
        b = planner.plan(cands, slo, workload_fn=fn, n_rates=6).best("per_gpu")
        best[label] = b["name"].split()[0]
        # the roofline balance rule agrees with the simulated choice
        assert config_name(*planner.pool_ratio("Llama-3.1-8B", H100, p_len, o_len, slo)) == best[label]
    assert best == {"prefill-heavy": "2P1D", "decode-heavy": "1P2D"}


def test_phase_diagram_reuses_link_independent_units():
    calls = []

    def setup(prompt, link):
        slo = {"ttft": 0.5, "tpot": 0.02}
        cands = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("chunked",), chunk_sizes=(512,))
        cands += planner.disaggregated_candidates("Llama-3.1-8B", links=(link,), max_unit_gpus=2)
        calls.append(len(cands))
        return {"candidates": cands, "slo": slo, "key": prompt,
                "workload": lambda r: workload.poisson(rate=r, n=60, prompt=prompt, output=16, seed=0)}

    df = planner.phase_diagram([512], ["100GbE", "NVLink4"], setup, x_name="prompt", y_name="link",
                               n_rates=4)
    assert list(df.columns[:2]) == ["prompt", "link"] and len(df) == 2
    # the colocated unit does not depend on the link: same goodput in both rows
    assert df.best_colocated.iloc[0] == df.best_colocated.iloc[1] > 0
    assert df.best_disaggregated.iloc[0] <= df.best_disaggregated.iloc[1] + 1e-9
    assert set(df.winner) <= {"colocated", "disaggregated", "tie", "none"}


def test_conditional_candidates_follow_the_simulator():
    c = planner.conditional_candidates("Llama-3.1-8B", max_unit_gpus=2, local_prefill=(256, 1024))
    assert [x.arch for x in c] == ["conditional"] * 2
    assert [x.params["local_prefill"] for x in c] == [256, 1024]
    assert c[0].cluster().local_prefill == 256 and "local≤256" in c[0].name
    assert isinstance(pd.DataFrame([{"n": x.n_gpus} for x in c]), pd.DataFrame)


# ---------------------------------------------------------------- capacity estimate, suspect cells
def test_capacity_estimate_matches_a_hand_computation():
    from pdlib import CostModel, models
    assert planner.capacity_bound is planner.capacity_estimate           # old name kept for callers
    cm = CostModel(models.get("Llama-3.1-8B"), H100, tp=1)
    P, O = 1024, 128
    B = min(256, cm.kv_capacity_tokens // (P + O))                      # decode batch the KV holds
    assert B == 256                                                       # 8B on 80 GB: max_batch binds
    t_p = float(cm.prefill(P).time)                                       # one prompt alone, seconds
    t_d = float(cm.decode(B, P + O / 2).time)                             # one full decode step
    # 2P1D: the slower pool, min(2 / t_p, 1 · B / ((O − 1) · t_d))
    (dis,) = planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=3, ratios=((2, 1),))
    hand = min(2 / t_p, B / ((O - 1) * t_d))
    assert planner.capacity_estimate(dis, P, O) == pytest.approx(hand, rel=1e-9)
    # colocated: compute and memory roofs add up separately over one prompt and its O − 1 decodes
    (col,) = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("chunked",), chunk_sizes=(512,))
    pre, dec = cm.prefill(P), cm.decode(B, P + O / 2)
    compute = float(pre.compute_time) + (O - 1) * float(dec.compute_time) / B
    memory = float(pre.memory_time) + (O - 1) * float(dec.memory_time) / B
    assert planner.capacity_estimate(col, P, O) == pytest.approx(1 / max(compute, memory), rel=1e-9)
    # a roofline number of the right size: an 8B model on one H100 serves a few to tens of req/s
    assert 5 < planner.capacity_estimate(col, P, O) < 100


def _diagram(setup_kwargs, **sweep_kwargs):
    """A one-cell phase diagram of one colocated Llama-3.1-8B unit (chunked-512, tp 1)."""
    (col,) = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("chunked",), chunk_sizes=(512,))
    n, prompt, output, slo = (setup_kwargs[k] for k in ("n", "prompt", "output", "slo"))

    def setup(x, y):
        return {"candidates": [col], "slo": slo,
                "workload": lambda r: workload.poisson(rate=r, n=n, prompt=prompt, output=output, seed=0)}

    df = planner.phase_diagram([prompt], [output], setup, x_name="prompt", y_name="output", **sweep_kwargs)
    est = planner.capacity_estimate(col, prompt, output)
    return df.iloc[0], est


def test_phase_diagram_carries_censoring_and_flags_goodput_above_the_estimate():
    loose = {"ttft": 100.0, "tpot": 1.0}
    # a short run (20 requests of 1,024 output tokens) at up to 3× the estimate: all 20 fit in one
    # decode batch, every request meets the loose SLO, so the "goodput" is the top grid rate —
    # 3× the unit's roofline throughput. The flag must be set (and the cell is "above grid").
    row, est = _diagram({"n": 20, "prompt": 128, "output": 1024, "slo": loose}, n_rates=2, span=(1.5, 3.0))
    assert row.censored_colocated == "above grid"
    assert row.best_colocated == pytest.approx(3.0 * est)                 # 1 GPU: per GPU = per unit
    assert row.capacity_colocated == pytest.approx(est)
    assert row.above_estimate_colocated and row.above_estimate
    # a grid that stops at half the estimate can never be flagged, whatever the run length
    row, est = _diagram({"n": 40, "prompt": 512, "output": 16, "slo": loose}, n_rates=2, span=(0.1, 0.5))
    assert row.censored_colocated == "above grid" and row.best_colocated == pytest.approx(0.5 * est)
    assert not row.above_estimate_colocated and not row.above_estimate
    # an impossible SLO: goodput 0, "below grid", not flagged
    row, _ = _diagram({"n": 40, "prompt": 512, "output": 16, "slo": {"ttft": 1e-6}}, n_rates=2)
    assert row.best_colocated == 0 and row.censored_colocated == "below grid"
    assert not row.above_estimate_colocated
    # a crossing inside the grid: censored is ""
    row, _ = _diagram({"n": 60, "prompt": 512, "output": 16, "slo": {"ttft": 0.2, "tpot": 0.02}}, n_rates=6,
                      span=(0.1, 3.0))
    assert row.censored_colocated == "" and row.best_colocated > 0


def test_diagram_default_request_count_and_columns():
    import inspect
    assert planner.DIAGRAM_REQUESTS == 450
    for f in (planner.ratio_model_diagram, planner.prompt_link_diagram):
        assert inspect.signature(f).parameters["n"].default == planner.DIAGRAM_REQUESTS
    with pytest.raises(ValueError, match="requests per simulation"):
        planner.prompt_link_diagram(n=0)
    pm = planner.ratio_model_diagram(models=("Llama-3.1-8B",), shapes=((512, 16),), n=120, n_rates=2,
                                     span=(0.1, 0.5))
    assert pm.n.iloc[0] == 120
    for a in ("colocated", "disaggregated"):
        assert {f"censored_{a}", f"capacity_{a}", f"above_estimate_{a}"} <= set(pm.columns)
        assert pm[f"censored_{a}"].iloc[0] == "above grid"               # the grid ends at half the estimate
    assert not pm.above_estimate.iloc[0]


def test_burstiness_pools_seeds_and_counts_bursts():
    cands = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("continuous",))
    one = planner.burstiness_sweep(cands, 2.0, cvs=(1.0, 9.0), n=60, prompt=512, output=16, n_seeds=1)
    three = planner.burstiness_sweep(cands, 2.0, cvs=(1.0, 9.0), n=60, prompt=512, output=16, n_seeds=3)
    assert list(one.n_requests) == [60, 60] and list(three.n_requests) == [180, 180]
    # seed 0 alone equals the first of the three seeds' workloads: bursts add up over seeds
    arr = [np.asarray(workload.gamma(rate=2.0, n=60, cv=cv, prompt=512, output=16, seed=s).arrival)
           for cv in (1.0, 9.0) for s in range(3)]
    bursts = [1 + int(np.sum(np.diff(a) > 1 / 2.0)) for a in arr]
    assert list(three.bursts) == [sum(bursts[:3]), sum(bursts[3:])]
    assert list(one.bursts) == [bursts[0], bursts[3]]
    # cv 9 packs the same requests into far fewer bursts than Poisson
    assert three.bursts.iloc[1] < three.bursts.iloc[0] / 3
    with pytest.raises(ValueError, match="n_seeds"):
        planner.burstiness_sweep(cands, 2.0, n_seeds=0)
