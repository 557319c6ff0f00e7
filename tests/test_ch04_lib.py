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
from pdlib import measurements as ms  # noqa: E402
from pdlib import reproduce as rp  # noqa: E402
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


def test_sarathi_paper_numbers_come_from_their_sources():
    p = ch.SARATHI_PAPER
    # Sarathi-Serve table 3 / §5.1: (P99 TBT target, token budget) for Mistral-7B
    assert p["slos"] == {"strict": (0.1, 512), "relaxed": (0.5, 2048)}
    # osdi-experiments/figure-9/chunking-overhead.csv, data rows 5-7: 4,095 tokens in chunks of
    # 512, 1,024, 2,048 took 1.18894, 1.20223, 1.02381 × the unchunked 775.44 ms: to the percent
    assert p["prefill_overhead_prompt"] == 4095
    assert p["prefill_overhead"] == {512: 0.19, 1024: 0.20, 2048: 0.02}
    assert p["capacity_ratio_mistral"] == 2.6 == rp.SARATHI_PAPER["gain"]["Mistral-7B-v0.1"]
    assert p["gpu"] == "A100-PCIe-80GB"


def test_overhead_vs_sarathi_row_by_row():
    cm = CostModel("Yi-34B", "A100-PCIe-80GB", tp=2)
    t = ch.overhead_vs_sarathi(cm)
    assert len(t) == 16 and t.chunk.isna().sum() == 4
    r = t[(t.prompt == 4095) & (t.chunk == 512)].iloc[0]
    assert r.steps == 8 and r.measured_ms == pytest.approx(921.958, abs=1e-3)
    assert r.measured_relative == pytest.approx(1.18894, abs=1e-5)
    by_hand = sum(cm.step([item]).time for item in ch.chunk_schedule(4095, 512)) / cm.prefill(4095).time
    assert r.model_relative == pytest.approx(by_hand, rel=1e-12)
    assert r.gap_pp == pytest.approx(100 * (r.measured_relative - by_hand))
    # each of the 7 added steps cost the GPUs (921.958 - 775.444) / 7 = 20.93 ms
    assert r.extra_ms_per_step == pytest.approx((921.958 - 775.444) / 7, abs=1e-3)
    # the roofline prices the overhead at < 0.5% where the GPUs paid 15-20% (2k/4k, chunks ≤ 1,024)
    chunked = t.dropna(subset=["chunk"])
    assert ((chunked.model_relative >= 1) & (chunked.model_relative < 1.005)).all()
    small = chunked[(chunked.chunk <= 1024) & (chunked.prompt <= 4095)]
    assert (small.measured_relative.between(1.15, 1.21)).all() and (small.gap_pp > 14).all()
    # unchunked, the roofline is within 2.6%, 2.5% and 5.0% of the measured 2k, 4k, 8k prefills
    whole = t[t.chunk.isna() & (t.prompt <= 8191)]
    np.testing.assert_allclose((whole.model_ms / whole.measured_ms - 1).abs(), [0.0257, 0.0248, 0.0502], atol=5e-4)
    src = ms.sarathi_chunking_overhead()
    assert list(whole.measured_ms) == list(src[src.chunk.isna() & (src.prompt <= 8191)].prefill_ms)


def test_overhead_curve_is_chunk_overhead_on_a_grid():
    c = ch.overhead_curve(CM70, [2048, 4096], [512, 4096])
    assert list(c.prompt) == [2048, 2048, 4096, 4096] and list(c.steps) == [4, 1, 8, 1]
    assert c.relative.iloc[2] == pytest.approx(ch.chunk_overhead(CM70, 4096, 512))
    assert c.relative.iloc[1] == pytest.approx(1.0) and c.relative.iloc[3] == pytest.approx(1.0)


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


def test_tbt_capacity_is_sarathi_serves_capacity():
    def work(rate):
        return rp.sarathi_workload("openchat_sharegpt4", 60, rate)

    cap = ch.tbt_capacity("Mistral-7B-v0.1", "A100-PCIe-80GB", work, slos={"strict": (0.1, 512)}, tol=0.2)
    assert list(cap.scheduler) == ["prefill-priority (vLLM)", "chunked (Sarathi-Serve)"]
    assert cap.gain.iloc[0] == pytest.approx(1.0)
    assert cap.gain.iloc[1] == pytest.approx(cap.capacity.iloc[1] / cap.capacity.iloc[0])
    assert cap.capacity.iloc[1] > cap.capacity.iloc[0] > 0
    # every row passes Sarathi-Serve's own test at its capacity: P99 of all gaps and median delay
    assert (cap.p99_tbt <= 0.1).all() and (cap.median_queue_delay <= 2.0).all()


def test_chapter_04_and_09_quote_the_same_capacities():
    # chapter 04 shows the ShareGPT column of chapter 10's Mistral-7B grid: the same runs
    grid = rp.sarathi_capacity("Mistral-7B-v0.1")["table"]
    one = rp.sarathi_capacity("Mistral-7B-v0.1", datasets=("openchat_sharegpt4",))["table"]
    col = grid[grid.dataset == "openchat_sharegpt4"].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, col)
    via_ch = ch.tbt_capacity("Mistral-7B-v0.1", "A100-PCIe-80GB",
                             lambda r: rp.sarathi_workload("openchat_sharegpt4", 300, r))
    np.testing.assert_array_equal(via_ch.capacity, col.capacity)


# ---------------------------------------------------------------- plots
def test_plot_overhead_vs_measured_draws_model_lines_and_measured_dots():
    cm = CostModel("Yi-34B", "A100-PCIe-80GB", tp=2)
    vs = ch.overhead_vs_sarathi(cm)
    curve = ch.overhead_curve(cm, sorted(vs.prompt.unique()), [512, 1024, 2048])
    ax = tradeoff.plot_overhead_vs_measured(curve, vs)
    lines = [ln for ln in ax.lines if ln.get_linestyle() != "None"][:-1]     # last: the 0 line
    dots = [ln for ln in ax.lines if ln.get_linestyle() == "None"]
    assert len(lines) == 4 and len(dots) == 4                  # one of each per prompt length
    m4 = vs[(vs.prompt == 4095)].dropna(subset=["chunk"])
    assert np.allclose(dots[1].get_ydata(), (m4.measured_relative - 1) * 100)
    with pytest.raises(KeyError, match="missing"):
        tradeoff.plot_overhead_vs_measured(curve, vs.drop(columns="measured_relative"))


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
    cap = pd.DataFrame({"slo": ["strict", "strict"], "p99_tbt_slo": [0.1, 0.1],
                        "scheduler": ["prefill-priority (vLLM)", "chunked (Sarathi-Serve)"],
                        "token_budget": [8192, 512], "capacity": [1.0, 2.5], "gain": [1.0, 2.5]})
    ax = tradeoff.plot_capacity(cap, paper_ratio=2.6)
    assert [p.get_height() for p in ax.patches] == [1.0, 2.5]
    assert any(t.get_text() == "2.5×" for t in ax.texts)
    # with a dataset column: one group per (dataset, SLO)
    two = pd.concat([cap.assign(dataset="a"), cap.assign(dataset="b", capacity=[2.0, 3.0], gain=[1.0, 1.5])])
    ax = tradeoff.plot_capacity(two)
    assert [p.get_height() for p in ax.patches] == [1.0, 2.0, 2.5, 3.0]
    assert sorted(t.get_text() for t in ax.texts) == ["1.5×", "2.5×"]


# ---------------------------------------------------------------- exercises
def test_ch04_exercises_registered_and_solutions_pass():
    assert {"ch04.chunked_total", "ch04.overhead_70b", "ch04.largest_chunk"} <= set(ids())
    assert check("ch04.chunked_total", ch.chunked_prefill_time(CM70, 10_000, 1_000, 32, 1000)).ok
    assert check("ch04.overhead_70b", ch.chunk_overhead(CM70, 4096, 256)).ok
    assert not check("ch04.overhead_70b", 1.0).ok
    c = ch.largest_chunk_within(CostModel("Mistral-7B-v0.1", "A100-80GB"), 0.05, 64, 2000)
    assert check("ch04.largest_chunk", c).ok and not check("ch04.largest_chunk", 2 * c).ok
    assert check("ch04.largest_chunk", None).ok is None


def test_plot_overhead_vs_measured_draws_a_calibrated_line_per_prompt():
    from pdlib import published
    cm = CostModel("Yi-34B", "A100-PCIe-80GB", tp=2)
    cal = published.from_published("Yi-34B", "A100-PCIe-80GB", 2, "sarathi")
    vs = ch.overhead_vs_sarathi(cm)
    prompts = sorted(vs.prompt.unique())
    curve, curve_c = (ch.overhead_curve(m, prompts, [512, 1024, 2048]) for m in (cm, cal))
    ax = tradeoff.plot_overhead_vs_measured(curve, vs, calibrated=curve_c, labels=("roofline", "calibrated"))
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == len(prompts)
    c4 = curve_c[(curve_c.prompt == 4095) & (curve_c.chunk < 4095)].sort_values("chunk")
    assert np.allclose(dashed[1].get_ydata(), (c4.relative - 1) * 100)
    # the calibrated model prices the held-out 4,095-token prompt's chunking overhead near the
    # measured one (18.9% at chunk 512), the roofline near zero
    m = vs[(vs.prompt == 4095) & (vs.chunk == 512)].measured_relative.iloc[0] - 1
    o_cal = ch.chunk_overhead(cal, 4095, 512) - 1
    assert abs(o_cal - m) < 0.05 and ch.chunk_overhead(cm, 4095, 512) - 1 < 0.01
    with pytest.raises(KeyError, match="calibrated"):
        tradeoff.plot_overhead_vs_measured(curve, vs, calibrated=curve_c.drop(columns="relative"))
