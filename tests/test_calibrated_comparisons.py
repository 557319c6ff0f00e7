"""Comparisons of architectures priced by calibrated cost models, and judged within their error
(issue 14, "The chapter"): pdlib.published.model_error (the out-of-sample error a comparison
states), calibrated_cluster (each pool calibrated at its own tp), the planner's tie rule
(comparison_band, within_band, decide) and the head-to-head's fair search space."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pdlib import CostModel, planner, sim
from pdlib import published as pb
from pdlib import reproduce as rp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "calibration_validation.json"


# ---------------------------------------------------------------------- model_error
def _recorded(**tags) -> dict:
    lines = json.loads(RESULTS.read_text())["results"]
    hit = [x for x in lines if all(x[k] == v for k, v in tags.items())]
    assert len(hit) == 1, tags
    return hit[0]


@pytest.mark.parametrize("source,gpu,phase", [("splitwise", "A100-80GB", "prefill"),
                                              ("splitwise", "H100-SXM", "decode"),
                                              ("sarathi", "A100-PCIe-80GB", "decode"),
                                              ("vidur", "H100-SXM", "layer")])
def test_model_error_is_the_recorded_held_out_error(source, gpu, phase):
    # the number a chapter states is the benchmark's out-of-sample line, not a new computation
    rec = _recorded(scheme="interleaved", rows_of=source, model_of=source, gpu=gpu, split="test", phase=phase)
    assert pb.model_error(source, phase, gpu) == pytest.approx(rec["calibrated_median"], rel=1e-9)
    assert pb.model_error(source, phase, gpu, "p90") == pytest.approx(rec["calibrated_p90"], rel=1e-9)


def test_model_error_by_hand_on_the_test_rows_only():
    df = pb.validate("splitwise", "H100-SXM")
    test = df[(df.split == "test") & (df.phase == "decode")]
    assert len(test) == 7 and (df[df.phase == "decode"].split == "fit").sum() == 7
    assert pb.model_error("splitwise", "decode", "H100-SXM") == pytest.approx(
        float(np.median(test.calibrated_err.abs())))
    # a fit row is never counted: the error over fit and test rows together differs
    assert pb.model_error("splitwise", "decode", "H100-SXM") != pytest.approx(
        float(np.median(df[df.phase == "decode"].calibrated_err.abs())))
    # gpu=None pools the rows of every GPU the source measured
    both = np.concatenate([pb.validate("splitwise", g).query("split == 'test' and phase == 'decode'")
                           .calibrated_err.abs().to_numpy() for g in ("A100-80GB", "H100-SXM")])
    assert pb.model_error("splitwise", "decode") == pytest.approx(float(np.median(both)))


def test_vidur_and_roofline_errors_are_measured_on_engine_steps():
    # Vidur measured kernels: its prefill/decode error is on Splitwise's engine steps (all of them
    # out of sample for Vidur), the benchmark's cross-source line
    rec = _recorded(scheme="cross-source", rows_of="splitwise", model_of="vidur", gpu="H100-SXM", phase="decode")
    assert pb.model_error("vidur", "decode", "H100-SXM") == pytest.approx(rec["calibrated_median"], rel=1e-9)
    # the roofline: every engine row of the GPU
    df = pb.validate("splitwise", "A100-80GB")
    roof = df[df.phase == "decode"].roofline_err.abs()
    assert pb.model_error("roofline", "decode", "A100-80GB") == pytest.approx(float(np.median(roof)))
    # the calibration closes most of the gap: the roofline's decode error is several times larger
    assert pb.model_error("roofline", "decode", "H100-SXM") > 5 * pb.model_error("splitwise", "decode", "H100-SXM")


def test_model_error_refuses_what_was_not_measured():
    with pytest.raises(ValueError, match="roofline"):
        pb.model_error("vllm", "decode")
    with pytest.raises(ValueError, match="phase must be one of"):
        pb.model_error("splitwise", "attention")
    with pytest.raises(ValueError, match="measured A100-80GB, H100-SXM"):
        pb.model_error("vidur", "decode", "A100-PCIe-80GB")          # as from_published refuses it
    with pytest.raises(ValueError, match="no mixed step"):
        pb.model_error("splitwise", "mixed", "H100-SXM")
    with pytest.raises(ValueError, match="stat"):
        pb.model_error("splitwise", "decode", stat="mean")


# ---------------------------------------------------------------------- calibrated clusters
def test_calibrated_cluster_calibrates_each_pool_at_its_own_tp():
    c = sim.disaggregated(model="Llama-3.1-70B", prefill_gpu="H100-SXM", decode_gpu="H100-SXM",
                          link="IB-NDR-400G", prefill_tp=2, decode_tp=8, n_prefill=3)
    cal = pb.calibrated_cluster(c, "splitwise")
    for old, new, tp in ((c.prefill_cost, cal.prefill_cost, 2), (c.decode_cost, cal.decode_cost, 8)):
        ref = pb.from_published("Llama-3.1-70B", "H100-SXM", tp, "splitwise")
        assert new.knobs() == ref.knobs() and new.tp == tp
        assert new.kv_capacity_tokens == old.kv_capacity_tokens          # memory is not a fitted term
        assert new.decode(8, 1000).time == pytest.approx(ref.decode(8, 1000).time)
    # each pool's all-reduce is the one measured at its own tp (one cost_kwargs could not do this)
    assert (cal.prefill_cost.allreduce_latency, cal.prefill_cost.allreduce_bandwidth) == pb.allreduce_fit("h100_dgx", 2)
    assert (cal.decode_cost.allreduce_latency, cal.decode_cost.allreduce_bandwidth) == pb.allreduce_fit("h100_dgx", 8)
    assert cal.n_prefill == c.n_prefill and cal.link == c.link
    col = sim.colocated(model="Llama-3.1-8B", gpu="A100-80GB", scheduler="chunked", chunk_size=512)
    assert pb.calibrated_cluster(col, "splitwise").cost.overhead == pytest.approx(
        pb.fitted_terms("splitwise", "A100-80GB")["overhead"])
    assert pb.calibrated_cluster(col, None) is col                      # the roofline, untouched
    with pytest.raises(ValueError, match="measured"):
        pb.calibrated_cluster(sim.colocated(model="Llama-3.1-8B", gpu="L40S"), "splitwise")
    with pytest.raises(TypeError, match="cluster"):
        pb.calibrated_cluster(CostModel("Llama-3.1-8B", "H100-SXM"), "splitwise")


def test_candidates_stay_the_pure_roofline_unless_calibrated():
    c0 = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), chunk_sizes=(512,))[0]
    c1 = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), chunk_sizes=(512,), calibration="splitwise")[0]
    assert c0.calibration is None and c0.cluster().cost == CostModel("Llama-3.1-8B", "H100-SXM")
    assert c1.cluster().cost.knobs() == pb.from_published("Llama-3.1-8B", "H100-SXM", 1, "splitwise").knobs()
    assert c1.name == c0.name and c1.n_gpus == c0.n_gpus
    d = planner.disaggregated_candidates("Llama-3.1-70B", prefill_tps=(2,), decode_tps=(8,), ratios=((1, 1),),
                                         max_unit_gpus=16, calibration="splitwise")[0]
    cl = d.cluster()
    assert (cl.prefill_cost.tp, cl.decode_cost.tp) == (2, 8)
    assert cl.decode_cost.allreduce_bandwidth == pb.allreduce_fit("h100_dgx", 8)[1]
    # the cost model's helper and the scaled SLO follow the calibration
    assert planner.cost_model("Llama-3.1-8B", "H100-SXM").knobs() == CostModel("Llama-3.1-8B", "H100-SXM").knobs()
    slo0 = planner.scaled_slo("Llama-3.1-8B", "H100-SXM", 1024, 128)
    slo1 = planner.scaled_slo("Llama-3.1-8B", "H100-SXM", 1024, 128, calibration="splitwise")
    cm = pb.from_published("Llama-3.1-8B", "H100-SXM", 1, "splitwise")
    assert slo1["tpot"] == pytest.approx(2 * cm.decode(1, 1024 + 128).time) and slo1["tpot"] > slo0["tpot"]


# ---------------------------------------------------------------------- the tie rule
def test_comparison_band_by_hand():
    e = max(pb.model_error("splitwise", p, "H100-SXM") for p in ("prefill", "decode"))
    assert planner.comparison_band("splitwise", "H100-SXM") == pytest.approx(
        (1 + e) / (1 - e) * (1 + planner.RESOLUTION) - 1)
    assert planner.comparison_band("splitwise", "H100-SXM", resolution=0) == pytest.approx((1 + e) / (1 - e) - 1)
    # the roofline's error is far wider than a calibrated model's
    assert planner.comparison_band(None, "H100-SXM") > 3 * planner.comparison_band("splitwise", "H100-SXM")
    # p90 errors give a wider band than medians
    assert planner.comparison_band("splitwise", "H100-SXM", stat="p90") > planner.comparison_band("splitwise", "H100-SXM")
    with pytest.raises(ValueError, match="resolution"):
        planner.comparison_band("splitwise", "H100-SXM", resolution=1.5)


def test_a_difference_inside_the_band_is_a_tie():
    assert planner.within_band(1.13, 1.0, 0.19) and planner.within_band(1.0, 1.13, 0.19)    # symmetric
    assert not planner.within_band(1.25, 1.0, 0.19)
    assert planner.within_band(0.0, 0.0, 0.1) and not planner.within_band(0.5, 0.0, 10.0)
    assert planner.decide({"colocated": 2.63, "disaggregated": 2.34}, 0.19) == "tie"          # 1.13×
    assert planner.decide({"colocated": 2.63, "disaggregated": 2.34}, 0.05) == "colocated"
    assert planner.decide({"colocated": 1.0, "disaggregated": 1.3, "conditional": 1.2}, 0.05) == "disaggregated"
    assert planner.decide({"colocated": 1.0, "disaggregated": 1.3, "conditional": 1.25}, 0.05) == "tie"
    assert planner.decide({"colocated": 0.0, "disaggregated": 0.0}, 0.1) == "none"
    with pytest.raises(ValueError):
        planner.within_band(-1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="empty"):
        planner.decide({}, 0.1)


def test_slo_map_calls_ties_within_the_band():
    cands = planner.colocated_candidates("Llama-3.1-8B", tps=(1,), schedulers=("chunked",), chunk_sizes=(512,))
    cands += planner.disaggregated_candidates("Llama-3.1-8B", ratios=((1, 1),), max_unit_gpus=2)
    fn = lambda rate: planner.head_to_head_workload(n=80)(rate)  # noqa: E731
    sw = planner.sweep(cands, fn, n_rates=3)
    wide = planner.slo_map(sw, [1.0, 4.0], [0.02, 0.1], tie_within=10.0)
    narrow = planner.slo_map(sw, [1.0, 4.0], [0.02, 0.1], tie_within=0.0)
    for (_, w), (_, n) in zip(wide.iterrows(), narrow.iterrows()):
        vals = {"colocated": n.best_colocated, "disaggregated": n.best_disaggregated}
        assert n.winner == planner.decide(vals, 0.0)
        assert w.winner == ("none" if max(vals.values()) == 0 else
                            "tie" if min(vals.values()) > 0 else n.winner)


# ---------------------------------------------------------------------- the head-to-head's space
def test_head_to_head_space_is_fair_to_both_sides():
    cands = planner.head_to_head_candidates()
    names = {c.name for c in cands}
    col = [c for c in cands if c.arch == "colocated"]
    dis = [c for c in cands if c.arch == "disaggregated"]
    sp = planner.HEAD_TO_HEAD_SPACE
    assert len(col) == len(sp["colocated_tps"]) * (1 + len(sp["chunk_sizes"]))
    # prefill narrower than decode is searched, as are several xPyD shapes per tp pair
    assert "1P2D tp2/tp4 H100-SXM IB-NDR-400G" in names and "4P1D tp2/tp4 H100-SXM IB-NDR-400G" in names
    tps = {(c.params["prefill_tp"], c.params["decode_tp"]) for c in dis}
    assert tps == {(p, d) for p in sp["prefill_tps"] for d in sp["decode_tps"]}
    shapes = {(c.params["n_prefill"], c.params["n_decode"]) for c in dis}
    assert {(1, 1), (2, 1), (3, 1), (1, 2), (3, 2)} <= shapes
    assert all(c.n_gpus <= planner.HEAD_TO_HEAD["budget_gpus"] for c in cands)
    assert all(math.gcd(*s) == 1 for s in shapes)
    # the units of the book's earlier, narrower search are all still there
    for old in ("prefill-priority tp4 H100-SXM", "chunked-256 tp4 H100-SXM", "chunked-1024 tp4 H100-SXM",
                "chunked-512 tp8 H100-SXM", "1P1D tp4/tp4 H100-SXM IB-NDR-400G",
                "2P1D tp4/tp4 H100-SXM IB-NDR-400G", "2P1D tp4/tp8 H100-SXM IB-NDR-400G",
                "1P1D local≤1024 tp4/tp4 H100-SXM IB-NDR-400G"):
        assert old in names
    cal = planner.head_to_head_candidates(calibration="splitwise")
    assert [c.name for c in cal] == [c.name for c in cands] and {c.calibration for c in cal} == {"splitwise"}


def test_head_to_head_verdict_reads_the_plan_within_the_band():
    keep = {"chunked-512 tp4 H100-SXM", "1P2D tp4/tp4 H100-SXM IB-NDR-400G"}
    cands = [c for c in planner.head_to_head_candidates(calibration="splitwise", conditional=False)
             if c.name in keep]
    sw = planner.head_to_head_sweep(cands, n=120)
    p = planner.plan(sw, planner.HEAD_TO_HEAD["slo"], budget_gpus=16)
    v = planner.head_to_head_verdict(p, "splitwise")
    g = p.table.set_index("name").goodput_per_gpu
    assert v["ratio"] == pytest.approx(g["1P2D tp4/tp4 H100-SXM IB-NDR-400G"] / g["chunked-512 tp4 H100-SXM"])
    assert v["band"] == pytest.approx(planner.comparison_band("splitwise", "H100-SXM"))
    assert v["verdict"] == planner.decide({"colocated": g["chunked-512 tp4 H100-SXM"],
                                           "disaggregated": g["1P2D tp4/tp4 H100-SXM IB-NDR-400G"]}, v["band"])
    assert v["error"] == pytest.approx(max(pb.model_error("splitwise", ph, "H100-SXM") for ph in ("prefill", "decode")))


# ---------------------------------------------------------------------- calibrated reproductions
def test_reproductions_pass_the_calibration_to_every_instance():
    ds = rp.xpyd_goodput(1, 1, n=60, tol=0.3, calibration="vidur")
    d0 = rp.xpyd_goodput(1, 1, n=60, tol=0.3)
    assert ds.rate != d0.rate                              # a different cost model, a different answer
    cal = rp.kv_emission_gbps(8192, model="Llama-2-70B", gpu="H100-SXM", tp=8, calibration="splitwise")
    roof = rp.kv_emission_gbps(8192, model="Llama-2-70B", gpu="H100-SXM", tp=8)
    cm = pb.from_published("Llama-2-70B", "H100-SXM", 8, "splitwise")
    assert cal == pytest.approx(8 * 8192 * cm.model.kv_bytes_per_token() / cm.prefill(8192).time / 1e9)
    assert cal < roof                                       # a slower prefill emits KV more slowly


def test_compare_within_error_ties_only_what_the_pricing_model_cannot_tell():
    band = max(planner.comparison_band("splitwise", g) for g in ("H100-SXM", "A100-80GB"))
    inside, outside = 1 + band / 2, (1 + band) * 1.05
    gpus = ("H100-SXM", "A100-80GB")
    assert rp.compare_within_error(1.4, inside, "ratio", "splitwise", gpus) == "no effect within error"
    assert rp.compare_within_error(1.4, outside, "ratio", "splitwise", gpus) == rp.compare(1.4, outside)
    # a ratio no model prices (catalog prices), and a quantity, are never ties
    assert rp.compare_within_error(0.8, 1 / inside, "ratio", "splitwise", gpus,
                                   priced_by_model=False) == rp.compare(0.8, 1 / inside)
    assert rp.compare_within_error(100, 100 * inside, "quantity", "splitwise", gpus) == \
        rp.compare(100, 100 * inside, "quantity")
    # the roofline's band is wider: what the calibrated model resolves, the roofline may not
    assert planner.comparison_band(None, "H100-SXM") > planner.comparison_band("splitwise", "H100-SXM")
