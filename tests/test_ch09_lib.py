"""Chapter 09 library parts: head-to-head plots (pdlib.viz.slomap) and the exercise checkers (ch09)."""
import math

import numpy as np
import pandas as pd
import pytest

from pdlib import hardware, planner, sim, workload
from pdlib.exercises import ch09, check, ids
from pdlib.viz import slomap


def test_ch08_exercises_registered_and_checked():
    assert {"ch09.budget_gpus", "ch09.pool_ratio", "ch09.link_ttft"} <= set(ids())
    assert check("ch09.budget_gpus", None).ok is None
    # by hand: 2P1D tp4/tp4 = 12 H100s at the catalog price; floor(100 / (12 · price)) replicas
    price = hardware.gpu("H100-SXM").price_per_hour
    gpus = math.floor(100 / (12 * price)) * 12
    assert ch09.deployment_gpus() == gpus
    assert check("ch09.budget_gpus", gpus).ok
    assert not check("ch09.budget_gpus", gpus + 12).ok              # one replica too many
    assert not check("ch09.budget_gpus", math.floor(100 / (12 * price))).ok   # replicas, not GPUs

    cfg = ch09.balanced_config()
    assert check("ch09.pool_ratio", cfg).ok and check("ch09.pool_ratio", cfg.lower()).ok
    # 4,096-token prompts and 64-token answers: prefill is the bottleneck, the balance has more P
    assert int(cfg[0]) > int(cfg.split("P")[1][0])
    assert not check("ch09.pool_ratio", "1P1D").ok
    assert not check("ch09.pool_ratio", "5P1D").ok                   # not an allowed answer

    s = ch09.LINK_SETUP
    w = workload.poisson(rate=s["rate"], n=s["n"], prompt=s["prompt"], output=s["output"], seed=0)
    ttft = {ln: sim.simulate(sim.disaggregated(model=s["model"], prefill_gpu=s["gpu"], decode_gpu=s["gpu"],
                                               link=ln), w).requests.ttft.mean()
            for ln in (s["slow"], s["fast"])}
    ratio = ttft[s["slow"]] / ttft[s["fast"]]
    assert ratio > 1.2                                               # 0.5 MB/token KV over 12.5 GB/s
    assert check("ch09.link_ttft", ratio).ok
    assert not check("ch09.link_ttft", 1.0).ok
    # the exercise is about the default whole-request transfer: streamed layer by layer, the
    # 100 GbE transfer would hide behind the prefill and the answer would be different
    lw = {ln: sim.simulate(sim.disaggregated(model=s["model"], prefill_gpu=s["gpu"], decode_gpu=s["gpu"],
                                             link=ln, transfer="layerwise"), w).requests.ttft.mean()
          for ln in (s["slow"], s["fast"])}
    assert not check("ch09.link_ttft", lw[s["slow"]] / lw[s["fast"]]).ok


def _sweep():
    cands = (planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("chunked",), chunk_sizes=(512,))
             + planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=2))
    fn = lambda r: workload.poisson(rate=r, n=60, prompt=512, output=16, seed=0)  # noqa: E731
    return planner.sweep(cands, fn, n_rates=4)


def test_plots_draw_what_they_say():
    sw = _sweep()
    p = planner.plan(sw, {"ttft": 0.2, "tpot": 0.02})
    ax = slomap.plot_plan(p.table)
    assert sorted(b.get_width() for b in ax.patches) == pytest.approx(sorted(p.table.goodput_per_gpu))
    assert ax.get_xlabel().startswith("goodput per GPU")
    with pytest.raises(ValueError):
        slomap.plot_plan(p.table, by="goodput")

    ax = slomap.plot_attainment(sw, {"ttft": 0.2})
    assert len(ax.get_lines()) == 3                                  # 2 candidates + the target line

    m = planner.slo_map(sw, [0.05, 0.2], [0.01, 0.05])
    ax = slomap.plot_slo_map(m)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "200"]
    assert len(ax.texts) == int((~np.isnan(m.ratio)).sum())
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert legend == set(m.winner)

    df = pd.DataFrame({"prompt": [512, 2048, 512, 2048], "link": ["a", "a", "b", "b"],
                       "winner": ["colocated", "disaggregated", "tie", "disaggregated"],
                       "ratio": [0.5, 1.5, 1.0, 2.0]})
    ax = slomap.plot_phase_diagram(df, "prompt", "link")
    assert [t.get_text() for t in ax.texts] == ["0.50", "1.50", "1.00", "2.00"]
    img = ax.images[0].get_array()
    assert img.shape == (2, 2) and img[0, 1] == img[1, 1] != img[0, 0]   # same winner, same colour
    with pytest.raises(KeyError, match="winner"):
        slomap.plot_phase_diagram(df.drop(columns="winner"), "prompt", "link")

    burst = pd.DataFrame({"name": ["a", "a", "b", "b"], "arch": ["colocated"] * 2 + ["disaggregated"] * 2,
                          "cv": [1.0, 4.0, 1.0, 4.0], "tpot_p99_inflation": [1.2, 1.5, 1.1, 1.1],
                          "tpot_p50_inflation": [1.1, 1.3, 1.0, 1.0]})
    axes = slomap.plot_burstiness(burst)
    assert len(axes) == 2 and list(axes[1].get_lines()[0].get_ydata()) == [1.2, 1.5]
    assert axes[1].get_lines()[1].get_linestyle() == "--"            # disaggregated dashed


def test_burstiness_sweep_and_cost_table():
    cands = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("continuous",))
    b = planner.burstiness_sweep(cands, 2.0, cvs=(1.0, 4.0), n=60, prompt=512, output=16)
    assert list(b.cv) == [1.0, 4.0] and (b.finished == 1.0).all()
    cm = cands[0].cluster().cost
    assert b.decode_step_s.iloc[0] == pytest.approx(float(cm.decode(1, 512 + 8).time))
    assert b.tpot_p99_inflation.iloc[0] == pytest.approx(b.tpot_p99.iloc[0] / b.decode_step_s.iloc[0])
    assert (b.tpot_p50_inflation >= 0.99).all()                      # never faster than a lone decode
    with pytest.raises(ValueError, match="per_gpu_rate"):
        planner.burstiness_sweep(cands, 0.0)

    sw = _sweep()
    p = planner.plan(sw, {"ttft": 0.2, "tpot": 0.02})
    ct = planner.cost_table(p, output_tokens=16).set_index("arch")
    row = p.best("per_usd", "colocated")
    assert ct.loc["colocated", "usd_per_m_tokens"] == pytest.approx(
        row.usd_per_hour / (3600 * row.goodput * 16) * 1e6)


def test_plot_plans_within_error_shades_the_tie_band():
    t_a = pd.DataFrame({"name": ["u1", "u2", "u3"], "arch": ["colocated", "disaggregated", "colocated"],
                        "goodput_per_gpu": [2.0, 1.9, 1.0]})
    t_b = t_a.assign(goodput_per_gpu=[0.3, 0.4, 0.1])
    axes = slomap.plot_plans_within_error({"roofline": t_a, "calibrated": t_b}, {"roofline": 1.0, "calibrated": 0.2},
                                          top=2)
    assert len(axes) == 2
    # units in the calibrated order (best at the top), the union of each table's top 2: u2, u1
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["u1", "u2"]      # shared y: labels on the left
    band = [p for p in axes[1].patches if p.get_zorder() == 0][0]       # the axvspan
    verts = band.get_patch_transform().transform(band.get_path().vertices)     # x in data units
    assert verts[:, 0].min() == pytest.approx(0.4 / 1.2) and verts[:, 0].max() == pytest.approx(0.4)
    bars = [p for p in axes[0].patches if p.get_zorder() == 2]
    assert sorted(b.get_width() for b in bars) == [1.9, 2.0]
    with pytest.raises(ValueError, match="same non-empty labels"):
        slomap.plot_plans_within_error({"a": t_a}, {"b": 0.1})


def test_calibrated_phase_diagram_scales_its_slo_with_the_calibrated_model():
    kw = dict(prompts=(1024,), links=("IB-NDR-400G",), n=60, n_rates=2, span=(0.2, 1.5))
    roof = planner.prompt_link_diagram(**kw)
    cal = planner.prompt_link_diagram(calibration="splitwise", tie_within=0.0, **kw)
    want = planner.scaled_slo("Llama-2-7B", "H100-SXM", 1024, 128, calibration="splitwise")
    assert cal.slo.iloc[0] == pytest.approx(want) and cal.slo.iloc[0]["tpot"] > roof.slo.iloc[0]["tpot"]
    # with no band the winner is the larger goodput (or a tie only when they are equal)
    r = cal.iloc[0]
    assert r.winner == planner.decide({"colocated": r.best_colocated, "disaggregated": r.best_disaggregated}, 0.0)
