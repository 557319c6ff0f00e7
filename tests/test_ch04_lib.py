"""Chapter 04 library parts: pdlib.chunking, pdlib.viz.tradeoff and the ch04 exercise checkers."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pdlib import CostModel  # noqa: E402
from pdlib import chunking as ch  # noqa: E402
from pdlib import workload as wl  # noqa: E402
from pdlib.exercises import check, ids  # noqa: E402
from pdlib.viz import tradeoff  # noqa: E402

CM70 = CostModel("Llama-3.1-70B", "H100-SXM", tp=8)
CM8 = CostModel("Llama-3.1-8B", "A100-80GB")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


# ---------------------------------------------------------------- chunk arithmetic
def test_chunk_schedule_by_hand():
    assert ch.chunk_schedule(10, 4) == [(4, 0), (4, 4), (2, 8)]
    assert ch.chunk_schedule(10_000, 1_000)[-1] == (1_000, 9_000)
    assert ch.chunk_schedule(300, 512) == [(300, 0)]
    assert ch.chunk_steps(10_000, 1_000) == 10 and ch.chunk_steps(4096, 1000) == 5


@pytest.mark.parametrize("prompt,chunk", [(0, 4), (10, 0), (-5, 2), (10, 2.5)])
def test_chunk_schedule_rejects_bad_sizes(prompt, chunk):
    with pytest.raises(ValueError, match="positive integer"):
        ch.chunk_schedule(prompt, chunk)


def test_chunked_time_is_the_sum_of_cost_model_steps():
    dec = [(1, 1000)] * 32
    by_hand = sum(CM70.step([(1000, 1000 * i)] + dec).time for i in range(10))
    assert ch.chunked_prefill_time(CM70, 10_000, 1_000, 32, 1000) == pytest.approx(by_hand, rel=1e-12)
    # one chunk covering the prompt is the whole prefill
    assert ch.chunked_prefill_time(CM70, 4096, 4096) == pytest.approx(CM70.prefill(4096).time, rel=1e-12)
    assert ch.chunk_overhead(CM70, 4096, 8192) == pytest.approx(1.0)


def test_overhead_shrinks_with_the_chunk_and_never_goes_below_one():
    o = [ch.chunk_overhead(CM70, 4096, c) for c in (128, 256, 512, 1024, 2048, 4096)]
    assert all(a >= b for a, b in zip(o, o[1:])) and o[-1] == pytest.approx(1.0)
    assert o[0] > 1.5          # 128-token chunks: each step is memory-bound on the weight reads


def test_compute_bound_single_gpu_pays_almost_nothing():
    # 8B on one A100, no all-reduces: even 128-token chunks are compute-bound, and chunking adds
    # only the per-chunk LM-head row and the re-read prefix KV
    assert ch.chunk_overhead(CM8, 4096, 128) < 1.002


def test_chunk_table_columns_and_stall_ratio():
    t = ch.chunk_table(CM70, 10_000, [1_000, 10_000], decode_batch=32, decode_context=1000)
    assert list(t.steps) == [10, 1]
    assert t.decode_step_s.iloc[0] == pytest.approx(CM70.decode(32, 1000).time)
    assert t.max_step_s.iloc[1] == pytest.approx(CM70.step([(10_000, 0)] + [(1, 1000)] * 32).time)
    assert (t.stall_ratio == t.max_step_s / t.decode_step_s).all()
    # a 1k chunk step sits between a decode step and the whole-prompt stall
    assert t.decode_step_s.iloc[0] < t.max_step_s.iloc[0] < t.max_step_s.iloc[1] / 5
    assert math.isnan(ch.chunk_table(CM70, 4096, [512]).decode_step_s.iloc[0])


def test_largest_chunk_within_brackets_the_target():
    dec = [(1, 2000)] * 64
    cm = CostModel("Mistral-7B-v0.1", "A100-80GB")
    c = ch.largest_chunk_within(cm, 0.05, decode_batch=64, decode_context=2000)
    assert cm.step([(c, 0)] + dec).time <= 0.05 < cm.step([(c + 1, 0)] + dec).time
    assert ch.largest_chunk_within(cm, 1e-6) == 0            # not even one token fits
    with pytest.raises(ValueError, match="step_time"):
        ch.largest_chunk_within(cm, 0)
    with pytest.raises(ValueError, match="decode_batch"):
        ch.largest_chunk_within(cm, 0.05, decode_batch=-1)


def test_sarathi_paper_numbers():
    p = ch.SARATHI_PAPER
    assert p["slos"] == {"strict": (0.1, 512), "relaxed": (0.5, 2048)}
    assert p["prefill_overhead"] == {512: 0.19, 1024: 0.20, 2048: 0.02}
    assert p["capacity_ratio_mistral"] == 2.6


# ---------------------------------------------------------------- simulations (small)
def _wl(rate, n=80):
    return wl.poisson(rate=rate, n=n, prompt=wl.lognormal(1024, 4096, max=8192), output=64, seed=0)


def test_chunk_sweep_smaller_chunks_give_smaller_token_gaps():
    df = ch.chunk_sweep("Mistral-7B-v0.1", "A100-80GB", _wl(3.0), chunks=(256, 2048))
    assert list(df.scheduler) == ["continuous", "chunked", "chunked"]
    assert np.isnan(df.chunk.iloc[0]) and list(df.chunk.iloc[1:]) == [256, 2048]
    tbt = df.tbt_p99.to_numpy()
    assert tbt[1] < tbt[2] and tbt[1] < tbt[0] / 4      # small chunks: small token gaps
    # no gap of the 256-chunk run exceeds a full 256-token step (plus one decode step's worth)
    assert tbt[1] < CostModel("Mistral-7B-v0.1", "A100-80GB").step([(256, 8192)]).time * 1.5


def test_tbt_capacity_chunked_beats_continuous_under_a_strict_slo():
    cap = ch.tbt_capacity("Mistral-7B-v0.1", "A100-80GB", lambda r: _wl(r, 60),
                          slos={"strict": (0.1, 512)}, hi=8.0, tol=0.2)
    assert list(cap.scheduler) == ["continuous", "chunked"]
    assert cap.ratio.iloc[0] == pytest.approx(1.0)
    assert cap.ratio.iloc[1] == pytest.approx(cap.rate.iloc[1] / cap.rate.iloc[0])
    assert cap.rate.iloc[1] > cap.rate.iloc[0] > 0
    assert (cap.attainment >= 0.9).all()


# ---------------------------------------------------------------- plots
def test_plot_chunk_costs_draws_one_line_per_table_plus_paper():
    t = ch.chunk_table(CM70, 4096, [256, 1024, 4096], decode_batch=8, decode_context=500)
    fig = tradeoff.plot_chunk_costs({"70B": t}, paper=ch.SARATHI_PAPER["prefill_overhead"])
    ax1, ax2 = fig.axes[:2]
    assert len(ax1.lines) == 2                 # step times + decode-only line
    assert np.allclose(ax2.lines[0].get_ydata(), (t.overhead - 1) * 100)
    assert len(ax2.collections) == 1           # paper crosses
    with pytest.raises(KeyError, match="missing"):
        tradeoff.plot_chunk_costs({"x": pd.DataFrame({"chunk": [1]})})


def test_plot_tradeoff_and_capacity():
    sweep = pd.DataFrame({"scheduler": ["continuous", "chunked", "chunked"], "chunk": [np.nan, 256, 1024],
                          "ttft_p50": [0.3, 0.5, 0.35], "tbt_p99": [0.5, 0.02, 0.08]})
    ax = tradeoff.plot_tradeoff(sweep, slo=0.1)
    assert np.allclose(ax.lines[0].get_xdata(), [500, 350])
    assert [t.get_text() for t in ax.texts] == ["256", "1024"]
    cap = pd.DataFrame({"slo": ["strict", "strict"], "p99_tbt": [0.1, 0.1],
                        "scheduler": ["continuous", "chunked"], "chunk": [np.nan, 512],
                        "rate": [1.0, 2.5], "ratio": [1.0, 2.5]})
    ax = tradeoff.plot_capacity(cap, paper_ratio=2.6)
    assert [p.get_height() for p in ax.patches] == [1.0, 2.5]
    assert any(t.get_text() == "2.5×" for t in ax.texts)


# ---------------------------------------------------------------- exercises
def test_ch04_exercises_registered_and_solutions_pass():
    assert {"ch04.chunked_total", "ch04.overhead_70b", "ch04.largest_chunk"} <= set(ids())
    assert check("ch04.chunked_total", ch.chunked_prefill_time(CM70, 10_000, 1_000, 32, 1000)).ok
    assert check("ch04.overhead_70b", ch.chunk_overhead(CM70, 4096, 256)).ok
    assert not check("ch04.overhead_70b", 1.0).ok
    c = ch.largest_chunk_within(CostModel("Mistral-7B-v0.1", "A100-80GB"), 0.05, 64, 2000)
    assert check("ch04.largest_chunk", c).ok and not check("ch04.largest_chunk", 2 * c).ok
    assert check("ch04.largest_chunk", None).ok is None
