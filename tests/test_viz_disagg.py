"""pdlib.viz.disagg: the process diagram, a real run's timeline and the link sweep draw what they
say (one bar per prefill, KV message and decode step), and bad input raises a clear error."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pdlib.viz import disagg as vd  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def results():
    from pdlib import disagg, engine
    spec = engine.tiny_spec(n_layers=3, hidden=64, n_heads=4, n_kv_heads=2, ffn=128, vocab=300,
                            max_context=256)
    m = engine.load(spec, dtype=torch.float64, seed=0)
    prompt = [(7 * j) % 300 for j in range(40)]
    lw, = disagg.run(m, [prompt], 4, transport="gloo", checksums=False)
    wh, = disagg.run(m, [prompt], 4, transport="gloo", checksums=False, layerwise=False)
    assert lw.status == wh.status == "finished"
    return {"layerwise": lw, "whole": wh}


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]


def test_timeline_draws_prefill_each_message_and_each_decode_step(results):
    fig, ax = plt.subplots()
    assert vd.plot_run_timeline(results, ax=ax) is ax
    lw, wh = results["layerwise"], results["whole"]
    assert len(lw.wire) == 3 and len(wh.wire) == 1          # one message per layer, or one in all
    assert len(lw.step_seconds) == len(lw.tokens) - 1 == 3     # tokens 2..4 from decode steps
    expected = sum(1 + len(r.wire) + len(r.step_seconds) for r in results.values())
    assert len(_bars(ax)) == expected
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:3] == ["layerwise: prefill", "layerwise: KV link", "layerwise: decode"]
    # the prefill bar spans the prefill window, in ms
    pre = next(b for b in _bars(ax) if b.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red"))
    assert pre.get_x() == pytest.approx(lw.prefill_window[0] * 1e3)
    assert pre.get_width() == pytest.approx((lw.prefill_window[1] - lw.prefill_window[0]) * 1e3)
    plt.close(fig)


def test_timeline_rejects_bad_input(results):
    from pdlib.disagg import RequestResult
    with pytest.raises(ValueError, match="empty"):
        vd.plot_run_timeline({})
    with pytest.raises(TypeError, match="mapping"):
        vd.plot_run_timeline([results["layerwise"]])
    with pytest.raises(ValueError, match="did not finish.*stalled"):
        vd.plot_run_timeline({"x": RequestResult(index=0, status="failed", reason="stalled")})
    with pytest.raises(ValueError, match="no prefill report"):
        vd.plot_run_timeline({"x": RequestResult(index=0, status="finished", tokens=(1,))})
    with pytest.raises(TypeError, match="not a RequestResult"):
        vd.plot_run_timeline({"x": 3})


@pytest.mark.parametrize("transport,devices,says", [
    ("gloo", ("cpu", "cpu"), "gloo socket"), ("shared", ("cpu", "cpu"), "shared memory"),
    ("shared", ("cuda:0", "cuda:0"), "CUDA IPC"), ("nccl", ("cuda:0", "cuda:1"), "NCCL")])
def test_process_diagram_names_the_kv_path(transport, devices, says):
    fig, ax = plt.subplots()
    vd.plot_disagg_processes(transport, devices, ax=ax)
    text = " ".join(t.get_text() for t in ax.texts)
    assert says in text and "front end" in text and "block ids" in text and "sender thread" in text
    assert f"rank 1, {devices[1]}" in text
    plt.close(fig)


def test_process_diagram_rejects_unresolved_transport_and_bad_devices():
    with pytest.raises(ValueError, match="pick_transport"):
        vd.plot_disagg_processes("auto")
    with pytest.raises(ValueError, match="devices"):
        vd.plot_disagg_processes("gloo", ("cpu",))


def test_link_sweep_plots_measured_and_predicted():
    table = pd.DataFrame({"bandwidth": [4e6, 1e6, 4e6, 1e6], "mode": ["layerwise"] * 2 + ["whole"] * 2,
                          "ttft": [0.11, 0.14, 0.13, 0.2], "exposed": [0.01, 0.04, 0.03, 0.1],
                          "predicted_exposed": [0.01, 0.04, 0.03, 0.1],
                          "predicted_ttft": [0.11, 0.14, 0.13, 0.2]})
    axes = vd.plot_link_sweep(table, emission_rate=1e6)
    assert len(axes) == 2
    # per mode a measured and a predicted line in each panel, plus the emission-rate line
    assert len(axes[0].lines) == 5 and len(axes[1].lines) == 5
    x, y = axes[0].lines[0].get_data()
    assert sorted(x) == [1.0, 4.0] and sorted(y) == pytest.approx([10.0, 40.0])     # MB/s, ms
    plt.close("all")
    with pytest.raises(ValueError, match="lacks columns"):
        vd.plot_link_sweep(table.drop(columns="exposed"))
    with pytest.raises(ValueError, match="bandwidth"):
        vd.plot_link_sweep(table.assign(bandwidth=0.0))
    with pytest.raises(TypeError, match="DataFrame"):
        vd.plot_link_sweep({"bandwidth": [1]})
