"""Chapter 11 library parts: the exercise checkers (ch11), and the hybrid and prefix-caching
simulations behind the chapter (pdlib.verdict)."""
from __future__ import annotations

import numpy as np
import pytest

from pdlib import CostModel, kv_transfer_time, planner
from pdlib import verdict as V
from pdlib.exercises import check, ids


def test_ch10_exercises_registered_and_checked():
    assert {"ch11.kv_1m_fp8", "ch11.claim5_fp8", "ch11.prefix_load_speedup"} <= set(ids())
    assert check("ch11.kv_1m_fp8", None).ok is None
    # 1,048,576 × 2 × 80 × 8 × 128 × 1 byte = 171.8 GB
    kv = 1_048_576 * 2 * 80 * 8 * 128 / 1e9
    assert check("ch11.kv_1m_fp8", kv).ok
    assert not check("ch11.kv_1m_fp8", 2 * kv).ok              # stored in bf16 by mistake
    assert check("ch11.claim5_fp8", "holds").ok
    assert not check("ch11.claim5_fp8", "about right").ok
    assert not check("ch11.claim5_fp8", "fine").ok             # not an allowed verdict
    speedup = (CostModel("Llama-3.1-70B", "H100-SXM", tp=8).prefill(32768).time
               / kv_transfer_time("Llama-3.1-70B", 32768, "IB-NDR-400G"))
    assert speedup > 1                                          # loading the prefix wins
    assert check("ch11.prefix_load_speedup", speedup).ok
    assert not check("ch11.prefix_load_speedup", 1 / speedup).ok


def test_hybrid_table_neither_pure_form_wins_everywhere():
    df = V.hybrid_table(n=200)
    assert len(df) == len(V.HYBRID_SLOS) * 3
    assert set(df.arch) == {"colocated", "disaggregated", "conditional"}
    assert (df.n_gpus == 3).all()
    assert df.rate.to_numpy() == pytest.approx((df.per_gpu * 3).to_numpy())
    s = V.hybrid_summary(df)
    # TaiChi's pattern in the roofline's leaders: the split ahead under a strict TPOT, sharing
    # under a relaxed one ...
    assert s["leaders"] == {"strict TPOT": "disaggregated", "relaxed TPOT": "colocated"}
    # ... but by less than the roofline's error allows (ties within ±88% on A100): no winner
    assert s["band"] == pytest.approx(planner.comparison_band(None, "A100-80GB"))
    assert s["winners"] == {"strict TPOT": "tie", "relaxed TPOT": "tie"}
    assert not s["one_pure_form_wins_all"]
    assert "strict TPOT → tie" in s["summary"] and "roofline" in s["summary"]
    # with a band of 5% (an exact cost model) the leaders win
    assert V.hybrid_summary(df, band=0.05)["winners"] == s["leaders"]
    # the conditional design beats the pure split when TPOT is relaxed (its decode GPU takes short prompts)
    relaxed = df[df.slo == "relaxed TPOT"].set_index("arch").per_gpu
    assert relaxed["conditional"] > relaxed["disaggregated"]
    # the share of requests prefilled locally is the share of prompts at most 1,024 tokens
    w = V.trace_workload(1.0, 200)
    assert df[df.arch == "conditional"].local_share.iloc[0] == pytest.approx(np.mean(w.prompt <= 1024))


def test_calibrated_hybrid_lets_each_split_pick_its_ratio():
    cal = V.BOOK_CLAIM_SETTINGS["hybrid_calibration"]
    df = V.hybrid_table(n=150, calibration=cal, ratios=V.HYBRID_RATIOS, tol=0.2)
    assert df.attrs["calibration"] == cal
    assert len(df) == len(V.HYBRID_SLOS) * 5               # colocated + 2 splits × (pure, conditional)
    per = df.set_index(["slo", "design"]).per_gpu
    # the calibrated decode step is slow, so 1P2D balances the pools better than 2P1D
    for slo in V.HYBRID_SLOS:
        assert per[slo, "disaggregated 1P2D"] > per[slo, "disaggregated 2P1D"]
    s = V.hybrid_summary(df)
    assert s["band"] == pytest.approx(planner.comparison_band(cal, "A100-80GB"))
    for slo, g in df.groupby("slo"):
        best = g.groupby("arch").per_gpu.max()
        assert s["winners"][slo] == planner.decide(best.to_dict(), s["band"])
    with pytest.raises(ValueError, match="ratios"):
        V.hybrid_designs(ratios=((1, 1),))


def test_conditional_with_threshold_zero_is_plain_disaggregation():
    slos = {"relaxed TPOT": V.HYBRID_SLOS["relaxed TPOT"]}
    df = V.hybrid_table(slos=slos, n=150, local_prefill=0, tol=0.2).set_index("arch")
    assert df.rate["conditional"] == pytest.approx(df.rate["disaggregated"])
    assert df.local_share["conditional"] == 0.0


def test_prefix_cache_table_shrinks_prefill_work():
    df = V.prefix_cache_table(20.0, fractions=(0.0, 0.5), n=200)
    w0, w5 = V.trace_workload(20.0, 200), V.trace_workload(20.0, 200, cached_fraction=0.5)
    assert (w5.cached == np.minimum(np.floor(0.5 * w5.prompt), w5.prompt - 1)).all()
    f = df.set_index(["cached_fraction", "design"])
    assert f.prefill_tokens[0.0].iloc[0] == pytest.approx(w0.prompt.mean())
    assert f.prefill_tokens[0.5].iloc[0] == pytest.approx((w5.prompt - w5.cached).mean())
    for design in df.design.unique():
        assert f.ttft_p90[(0.5, design)] < f.ttft_p90[(0.0, design)]
    # the prefill-starved split (one prefill GPU for two decode GPUs) is rescued by the cache
    assert f.attainment[(0.0, "disaggregated 1P2D")] < 0.9 <= f.attainment[(0.5, "disaggregated 1P2D")]
    assert set(df.n_gpus) == {3}
    with pytest.raises(ValueError, match="fractions"):
        V.prefix_cache_table(20.0, fractions=(1.5,), n=50)
