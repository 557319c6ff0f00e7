"""Tests for pdlib.viz.timeline (headless, Agg backend) and the chapter 03 exercise checkers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from pdlib import CostModel, sim  # noqa: E402
from pdlib.exercises import check  # noqa: E402
from pdlib.exercises.ch03 import HOL, hol_workload  # noqa: E402
from pdlib.sim.instance import TIMELINE_COLUMNS  # noqa: E402
from pdlib.viz.timeline import (STEP_KINDS, metric_values, plot_cdfs, plot_kv_usage,  # noqa: E402
                                plot_timeline, plot_timeline_series, plot_token_gaps,
                                plot_token_progress, rows_in_window, step_kind, summary_table)


def _timeline() -> pd.DataFrame:
    """Hand-made timeline of one instance: prefill, decode stretch, mixed step, idle, decode."""
    rows = [  # instance, role, start, end, steps, n_prefill_tokens, n_decode, batch, kv used, kv cap, bound
        (0, "both", 0.0, 1.0, 1, 10_000, 0, 1, 10_000, 40_000, "compute"),
        (0, "both", 1.0, 2.0, 72, 0, 32, 32, 12_000, 40_000, "memory"),
        (0, "both", 2.0, 2.1, 1, 480, 32, 33, 13_000, 40_000, "compute"),
        (0, "both", 3.0, 5.0, 100, 0, 8, 8, 4_000, 40_000, "memory"),
    ]
    return pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))


@pytest.fixture(scope="module")
def hol_small():
    """A small head-of-line run: 4 decoding requests, a 10,000-token prompt at 0.5 s."""
    cluster = sim.colocated(model="Llama-3.1-8B", gpu="A100-80GB", scheduler="continuous")
    return cluster, sim.simulate(cluster, hol_workload(n=4, output=100, at=0.5))


# ---------------------------------------------------------------- timeline rows
def test_step_kind_classifies_prefill_mixed_decode():
    assert list(step_kind(_timeline())) == ["prefill", "decode", "mixed", "decode"]


def test_rows_in_window_keeps_overlapping_rows_only():
    tl = _timeline()
    assert list(rows_in_window(tl, (1.5, 3.0)).start) == [1.0, 2.0]     # [3, 5] starts at 3.0: out
    assert len(rows_in_window(tl)) == 4
    assert len(rows_in_window(tl, (5.0, 9.0))) == 0


def test_rows_in_window_rejects_bad_input():
    with pytest.raises(KeyError, match=r"known instances: \[0\]"):
        rows_in_window(_timeline(), instances=3)
    with pytest.raises(ValueError, match="end > start"):
        rows_in_window(_timeline(), (2.0, 1.0))


# ---------------------------------------------------------------- Gantt
def test_plot_timeline_draws_one_bar_per_row_in_window_with_kind_colours():
    tl = _timeline()
    ax = plot_timeline(tl, window=(0.5, 2.5))
    bars = ax.patches
    assert len(bars) == 3                                  # rows 0, 1, 2 overlap [0.5, 2.5]
    by_color = {}
    for b in bars:
        by_color.setdefault(b.get_facecolor(), []).append((b.get_x(), b.get_width()))
    assert by_color[to_rgba(STEP_KINDS["prefill"])] == [(0.0, 1.0)]
    assert by_color[to_rgba(STEP_KINDS["decode"])] == [(1.0, 1.0)]
    assert by_color[to_rgba(STEP_KINDS["mixed"])][0] == pytest.approx((2.0, 0.1))
    assert ax.get_xlim() == (0.5, 2.5)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["instance 0 (both)"]


def test_plot_timeline_labels_wide_bars_with_steps_or_tokens():
    ax = plot_timeline(_timeline(), window=(0.0, 5.0), label_min=0.05)
    texts = sorted(t.get_text() for t in ax.texts)
    # the mixed step (0.1 s of a 5 s window = 2%) is too narrow for a label
    assert texts == ["10,000 tok", "×100 steps", "×72 steps"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["prefill step", "mixed step", "decode step"]


def test_plot_timeline_one_lane_per_instance(hol_small):
    tl = _timeline()
    two = pd.concat([tl, tl.assign(instance=1, role="decode")], ignore_index=True)
    ax = plot_timeline(two)
    assert len(ax.patches) == 8
    assert [t.get_text() for t in ax.get_yticklabels()] == ["instance 0 (both)", "instance 1 (decode)"]
    lanes = sorted({round(b.get_y() + b.get_height() / 2, 6) for b in ax.patches})
    assert lanes == [0.0, 1.0]
    # a real run: as many bars as timeline rows
    _, res = hol_small
    assert len(plot_timeline(res.timeline).patches) == len(res.timeline)


# ---------------------------------------------------------------- series and KV
def test_plot_timeline_series_is_piecewise_constant_with_idle_gaps():
    ax = plot_timeline_series(_timeline(), "batch")
    x, y = ax.lines[0].get_data()
    assert list(x) == [0.0, 1.0, 1.0, 2.0, 2.0, 2.1, 2.1, 3.0, 3.0, 5.0]
    assert list(y) == [1, 1, 32, 32, 33, 33, 0, 0, 8, 8]                 # idle 2.1-3.0 s: 0
    ax = plot_timeline_series(_timeline(), "batch", idle="hold")
    assert list(ax.lines[0].get_data()[1])[6:8] == [33, 33]
    with pytest.raises(KeyError, match="known: instance"):
        plot_timeline_series(_timeline(), "queue")
    with pytest.raises(ValueError, match="idle"):
        plot_timeline_series(_timeline(), "batch", idle="skip")


def test_plot_kv_usage_draws_usage_and_capacity_in_thousands_of_tokens():
    ax = plot_kv_usage(_timeline(), label="demo")
    usage, cap = ax.lines
    assert max(usage.get_data()[1]) == 13.0
    assert list(cap.get_data()[1]) == [40.0, 40.0]
    assert "thousand tokens" in ax.get_ylabel()
    assert "capacity (demo): 40k tokens" in [t.get_text() for t in ax.get_legend().get_texts()]


# ---------------------------------------------------------------- token streams
def test_plot_token_gaps_shows_the_stall_as_the_largest_gap(hol_small):
    cluster, res = hol_small
    ax = plot_token_gaps(res, [0, 4], marks={"long prompt arrives": 0.5})
    assert len(ax.lines) == 2 + 1                              # two requests and the mark
    gaps0 = ax.lines[0].get_data()[1]
    assert np.nanmax(gaps0) == pytest.approx(res.requests.max_tbt[0] * 1e3)
    # the stall holds the 10,000-token prefill step (cost model) plus one decode step
    prefill = cluster.cost.prefill(HOL["long_prompt"]).time
    assert prefill < res.requests.max_tbt[0] < prefill * 1.05
    assert any(t.get_text() == "long prompt arrives" for t in ax.texts)


def test_plot_token_progress_ends_at_the_output_length(hol_small):
    _, res = hol_small
    ax = plot_token_progress(res, [0, 4])
    assert ax.lines[0].get_data()[1][-1] == 100                # output of the short requests
    assert ax.lines[1].get_data()[1][-1] == HOL["long_output"]
    assert ax.lines[1].get_data()[0][0] == 0.5                 # the staircase starts at arrival


# ---------------------------------------------------------------- CDFs and tables
def test_metric_values_read_the_finished_requests(hol_small):
    _, res = hol_small
    np.testing.assert_allclose(metric_values(res, "ttft"), res.requests.ttft)
    np.testing.assert_allclose(metric_values(res, "tbt"), res.tbt)
    assert len(metric_values(res, "tbt")) == 4 * 99 + HOL["long_output"] - 1
    with pytest.raises(KeyError, match="known: ttft"):
        metric_values(res, "latency")


def test_plot_cdfs_one_panel_per_metric_one_line_per_result(hol_small):
    _, res = hol_small
    fig = plot_cdfs({"a": res, "b": res}, ("ttft", "tpot", "tbt"))
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert [ln.get_label() for ln in ax.lines] == ["a", "b"]
        assert ax.lines[0].get_data()[1][-1] == 1.0
    # TBT spans ~11 ms to ~0.9 s (> 20×): log axis; TTFT (0.9–2.3 s here) stays linear
    assert fig.axes[2].get_xscale() == "log"
    assert fig.axes[0].get_xscale() == "linear"
    assert plot_cdfs({"a": res}, ("ttft",), log=True).axes[0].get_xscale() == "log"
    with pytest.raises(ValueError):
        plot_cdfs({}, ("ttft",))


def test_summary_table_matches_result_summary(hol_small):
    _, res = hol_small
    s = res.summary()
    t = summary_table({"run": res}, percentiles=(50, 99))
    assert t.loc["run", "TTFT P99 (ms)"] == pytest.approx(s["ttft_p99"] * 1e3)
    assert t.loc["run", "throughput (req/s)"] == pytest.approx(s["throughput_rps"])
    assert t.loc["run", "finished"] == 5
    with pytest.raises(KeyError, match="50, 90 or 99"):
        summary_table({"run": res}, percentiles=(95,))


# ---------------------------------------------------------------- exercise checkers
def test_stall_checker_expects_prefill_plus_one_decode_step():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    # hand estimate: the prefill step, then a decode step of the 32 (~600 cached tokens) + the long one
    estimate = cm.prefill(10_000).time + cm.step([(1, 600)] * 32 + [(1, 10_000)]).time
    assert check("ch03.stall_h100", estimate).ok
    assert not check("ch03.stall_h100", estimate * 1e3).ok                  # ms instead of s
    assert check("ch03.stall_h100", None).ok is None


def test_tpot_checker_uses_the_definition():
    res = sim.simulate(sim.colocated(model="Llama-3.1-8B", gpu="A100-80GB"), hol_workload())
    df = res.requests
    assert check("ch03.tpot_running", float(df.tpot[0])).ok
    t = res.token_times(0)
    assert check("ch03.tpot_running", float((t[-1] - t[0]) / (len(t) - 1))).ok
    assert not check("ch03.tpot_running", float(df.e2e[0] / HOL["output"])).ok    # TTFT counted in


def test_tpot_winner_is_a_valid_choice_and_only_one_passes():
    fb = {c: check("ch03.tpot_winner", c).ok for c in ("static", "continuous")}
    assert sorted(fb.values()) == [False, True]
    assert check("ch03.tpot_winner", "chunked").ok is False
