"""Chapter 01's library code: microbenchmarks (on CPU, small sizes), roofline plots, the step
explorer and the exercise checkers. Expected numbers are computed by hand from the formulas."""
import time

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pdlib.exercises as exercises  # noqa: E402
from pdlib import CostModel, hardware  # noqa: E402
from pdlib import microbench as mb  # noqa: E402
from pdlib.viz import roofline as rl  # noqa: E402
from pdlib.widgets import explore, fitting_cost_model, step_explorer  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture
def one_thread():
    """Time kernels on one CPU thread: on a shared 2-core runner a second thread can be
    descheduled mid-matmul, which makes small matmuls look slower than they are."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- microbench
def test_measurement_rates_by_hand():
    m = mb.Measurement("x", flops=2e9, bytes=1e9, seconds=0.5)
    assert m.flops_per_s == 4e9 and m.bytes_per_s == 2e9 and m.intensity == 2.0
    with pytest.raises(ValueError, match="seconds > 0"):
        mb.Measurement("bad", 1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        mb.Measurement("bad", 1.0, 0.0, 1.0)


def test_matmul_counts_fp32(one_thread):
    n = 64
    m = mb.matmul(n, "cpu", repeats=3)
    assert m.flops == 2 * n ** 3
    assert m.bytes == 3 * 4 * n ** 2                          # A, B read; C written; 4 B each
    assert m.intensity == pytest.approx(2 * n ** 3 / (3 * 4 * n ** 2))   # = n/6 = 10.67
    assert m.seconds > 0


def test_matvec_intensity_is_half_in_fp32(one_thread):
    n = 512
    m = mb.matvec(n, "cpu", repeats=3)
    assert m.flops == 2 * n ** 2
    assert m.bytes == 4 * (n ** 2 + 2 * n)
    assert m.intensity == pytest.approx(2 * n ** 2 / (4 * n ** 2 + 8 * n))
    assert m.intensity == pytest.approx(0.5, rel=0.01)


def test_bf16_counts_two_bytes_per_element(one_thread):
    m = mb.matmul(32, "cpu", dtype=torch.bfloat16, repeats=1)
    assert m.bytes == 3 * 2 * 32 ** 2
    c = mb.copy(1024, "cpu", dtype=torch.float16, repeats=1)
    assert c.flops == 0 and c.bytes == 2 * 1024 * 2


def test_measure_roofline_cpu(one_thread):
    t0 = time.perf_counter()
    r = mb.measure_roofline("cpu", repeats=3, matmul_sizes=(64, 256), matvec_sizes=(1024,),
                            copy_elems=2 ** 18)
    assert time.perf_counter() - t0 < 5
    assert r.dtype == "float32" and r.device.startswith("CPU")
    names = [p.name for p in r.points]
    assert names[:3] == ["matmul 64", "matmul 256", "matvec 1024"] and names[3].startswith("copy")
    mm = [p for p in r.points if p.name.startswith("matmul")]
    assert r.peak_flops == max(p.flops_per_s for p in mm)
    assert r.peak_bw == max(p.bytes_per_s for p in r.points if p not in mm)
    assert r.peak_flops_kernel in names and r.peak_bw_kernel in names
    assert r.ridge == pytest.approx(r.peak_flops / r.peak_bw)
    # the compute-bound kernel does far more arithmetic per second than the memory-bound one
    matvec = r.points[2]
    assert mm[1].flops_per_s > 2 * matvec.flops_per_s
    table = r.table()
    assert list(table.index) == names
    assert table.loc["matvec 1024", "FLOP/B"] == pytest.approx(matvec.intensity)


def test_default_dtype_and_device_choice():
    assert mb.default_dtype("cpu") == torch.float32
    assert mb.pick_device("cpu") == "cpu"
    assert mb.pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'cpu' or 'cuda"):
        mb.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            mb.pick_device("cuda")


def test_time_kernel_median_per_call():
    calls = []
    t = mb.time_kernel(lambda: (calls.append(1), time.sleep(0.004)), "cpu", repeats=3, warmup=1,
                       min_time=0.01)
    assert 0.004 <= t < 0.03
    # warmup + autorange (1, 2, 4 calls at most until >= 10 ms) + 3 rounds of k calls
    assert len(calls) >= 1 + 3


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="positive integer"):
        mb.matmul(0, "cpu")
    with pytest.raises(ValueError, match="positive integer"):
        mb.copy(-5, "cpu")
    with pytest.raises(ValueError, match="repeats"):
        mb.time_kernel(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="at least one"):
        mb.measure_roofline("cpu", matmul_sizes=(), matvec_sizes=(64,), copy_elems=64)


# ----------------------------------------------------------------------------- viz
def test_attainable_flops_by_hand():
    # F = 100 FLOP/s, W = 10 B/s: ridge at 10 FLOP/B
    np.testing.assert_allclose(rl.attainable_flops(100.0, 10.0, [1, 10, 100]), [10, 100, 100])
    with pytest.raises(ValueError):
        rl.attainable_flops(0.0, 10.0, 1.0)


def test_step_table_matches_steps():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    d, p = cm.decode(8, 1024), cm.prefill(2048)
    t = rl.step_table({"d": d, "p": p})
    assert t.loc["d", "FLOPs"] == d.flops and t.loc["p", "bytes"] == p.bytes
    assert t.loc["d", "FLOP/B"] == pytest.approx(d.flops / d.bytes)
    assert t.loc["p", "step (ms)"] == pytest.approx(p.time * 1e3)
    assert t.loc["d", "ms / token"] == pytest.approx(d.time / 8 * 1e3)
    assert list(t["bound"]) == ["memory", "compute"]


def test_plot_rooflines_marks_catalog_ridges():
    ax = rl.plot_rooflines(["H100-SXM", "L40S"], steps={"decode": CostModel(
        "Llama-3.1-8B", "H100-SXM").decode(1, 0)})
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("L40S (GDDR6" in s and "ridge 419" in s for s in labels)
    assert any("H100-SXM (HBM3" in s and "ridge 295" in s for s in labels)
    markers = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    got = sorted((float(m.get_xdata()[0]), float(m.get_ydata()[0])) for m in markers)
    want = sorted((g.ridge, g.flops / 1e12) for g in map(hardware.gpu, ["H100-SXM", "L40S"]))
    np.testing.assert_allclose(got, want)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_title()
    with pytest.raises(KeyError, match="known"):
        rl.plot_rooflines(["H1000"])
    with pytest.raises(ValueError):
        rl.plot_rooflines([])


def test_plot_steps_places_points_at_achieved_rate():
    cm = CostModel("Llama-3.1-8B", "A100-80GB")
    steps = {"d": cm.decode(4, 512), "p": cm.prefill(1024)}
    ax = rl.plot_steps_on_roofline(cm, steps)
    pts = [(float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in ax.get_lines()
           if ln.get_marker() == "o" and len(ln.get_xdata())]
    want = [(float(s.intensity), s.flops / s.time / 1e12) for s in steps.values()]
    np.testing.assert_allclose(pts, want)


def test_plot_decode_intensity_and_measured_roofline():
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    ax = rl.plot_decode_intensity(cm, contexts=(0, 1024), batches=[1, 2, 4, 8])
    first = ax.get_lines()[0]
    np.testing.assert_allclose(first.get_ydata(), cm.decode(np.array([1, 2, 4, 8.]), 0).intensity)
    roof = mb.DeviceRoofline("test device", "float32", peak_flops=1e11, peak_bw=1e10,
                             points=(mb.Measurement("matmul 8", 1e9, 1e7, 0.02),
                                     mb.Measurement("matvec 8", 1e6, 2e6, 2e-4)),
                             peak_flops_kernel="matmul 8", peak_bw_kernel="matvec 8")
    ax = rl.plot_measured_roofline(roof)
    roofline = ax.get_lines()[0]
    assert max(roofline.get_ydata()) == pytest.approx(100.0)          # 1e11 FLOP/s in GFLOP/s
    assert "ridge 10 FLOP/B" in ax.get_legend().get_texts()[0].get_text()


# ----------------------------------------------------------------------------- widgets
def test_fitting_cost_model_raises_tp():
    cm, note = fitting_cost_model("Llama-3.1-8B", "H100-SXM")
    assert cm.tp == 1 and note == ""
    cm, note = fitting_cost_model("Llama-3.1-70B", "H100-SXM")   # 141 GB of weights > 72 GB
    assert cm.tp == 2 and "does not fit" in note and "tp=2" in note
    with pytest.raises(ValueError, match="up to 8"):
        fitting_cost_model("Llama-3.1-405B", "H100-SXM")            # 812 GB > 8 × 72 GB


def test_explore_text_and_figure():
    text, fig = explore("Llama-3.1-8B", "H100-SXM", batch=16, context=1024, prefill=2048)
    cm = CostModel("Llama-3.1-8B", "H100-SXM")
    assert f"step {cm.decode(16, 1024).time * 1e3:.2f} ms" in text
    assert f"step {cm.prefill(2048).time * 1e3:.2f} ms" in text
    assert "**memory-bound**" in text and "**compute-bound**" in text
    ax = fig.axes[0]
    assert sum(1 for ln in ax.get_lines() if ln.get_marker() == "o" and len(ln.get_xdata())) == 3


def test_explore_reports_instead_of_crashing():
    text, fig = explore("Llama-3.1-405B", "T4")
    assert fig is None and text.startswith("**Cannot price this step:**") and "does not fit" in text
    text, fig = explore("Llama-3.1-70B", "H100-SXM", batch=32, context=4096)
    assert "Using tp=2" in text and "could not be resident" in text and fig is not None


def test_step_explorer_builds_and_updates():
    pytest.importorskip("ipywidgets")
    panel = step_explorer("Llama-3.1-8B", "L40S", batch=4)
    (m, g, tp), (b, c, p) = (box.children for box in panel.children[:2])
    assert (m.value, g.value, tp.value, round(b.value)) == ("Llama-3.1-8B", "L40S", 1, 4)
    b.value = 64                                     # triggers explore() again, must not raise
    m.value = "Llama-3.1-405B"                       # does not fit: shows the message instead


# ----------------------------------------------------------------------------- exercises
def test_ch01_expected_values_by_hand():
    from pdlib.exercises import ch01
    assert ch01.ridge_a100().value == pytest.approx(312e12 / 2.039e12)      # 153 FLOP/B
    assert ch01.l40s_hbm().value == "no"
    ideal = CostModel("Llama-3.1-8B", "H100-SXM", flops_efficiency=1.0, bw_efficiency=1.0)
    b = ch01.decode_ridge_batch().value
    assert ideal.decode(b * 0.99, 0).bound == "memory" and ideal.decode(b * 1.01, 0).bound == "compute"
    # decode streams 1/8 of the 70B weights per GPU: at least that long, plus all-reduces
    t = ch01.decode_70b_tp8().value
    floor = 70.6e9 * 2 / 8 / (3.35e12 * 0.8)
    assert floor < t < 1.5 * floor


def test_ch01_checks_give_helpful_feedback():
    check = exercises.check
    assert check("ch01.ridge_a100", 153).ok
    fb = check("ch01.ridge_a100", 0.153)
    assert fb.ok is False and "factor of 1000" in fb.message and "Hint" in fb.message
    assert check("ch01.decode_ridge_batch", 295).ok                   # the back-of-envelope F/W
    assert not check("ch01.decode_ridge_batch", 650).ok
    fb = check("ch01.decode_70b_tp8", 8.4)                            # ms instead of s
    assert not fb.ok and "seconds" in fb.message
    assert check("ch01.l40s_hbm", "No").ok
    assert not check("ch01.l40s_hbm", "yes").ok
    assert "not one of the allowed" in check("ch01.l40s_hbm", "maybe").message
    assert check("ch01.l40s_hbm", None).ok is None
    assert set(exercises.ids()) >= {"ch01.ridge_a100", "ch01.decode_ridge_batch",
                                    "ch01.decode_70b_tp8", "ch01.l40s_hbm"}


# ----------------------------------------------------------------------------- chapter tables
def test_gpu_table_flags_every_batch_that_does_not_fit():
    # L4: 24 GB × 0.9 − 16.1 GB of Llama-3.1-8B weights leaves ~5.5 GB, and 64 requests of 1,025
    # tokens need 64 · 1,025 · 131,072 B = 8.6 GB: the unflagged 99.6 ms row
    t = rl.gpu_table("Llama-3.1-8B", ["L4", "H100-SXM"], batch=64, context=1024)
    l4 = t.loc["L4"]
    free = 24e9 * 0.9 - CostModel("Llama-3.1-8B", "L4").weight_bytes_per_gpu
    assert l4["KV free (GB/GPU)"] == pytest.approx(free / 1e9)
    assert l4["KV of batch (GB/GPU)"] == pytest.approx(64 * 1025 * 131_072 / 1e9)
    assert not l4.fits and t.loc["H100-SXM"].fits
    assert l4["max batch"] == int(free // 131_072) // 1025
    for batch, context in ((64, 1024), (256, 4096), (8, 32768)):
        num = rl.gpu_table("Llama-3.1-8B", hardware.gpu_names(), batch=batch, context=context)
        text = rl.gpu_table("Llama-3.1-8B", hardware.gpu_names(), batch=batch, context=context,
                            as_text=True)
        for gpu, row in num.iterrows():
            cm, _ = fitting_cost_model("Llama-3.1-8B", gpu)
            fits = batch * (context + 1) * cm.kv_bytes_per_token <= cm.free_kv_bytes
            assert row.fits == fits, gpu
            cell = text.loc[gpu, "decode step (ms)"]
            assert cell.endswith("(KV does not fit)") == (not fits), (gpu, cell)   # never unflagged
            assert cell.startswith(f"{row['decode step (ms)']:.1f}")
        assert (~num.fits).any()                     # each of these cases has infeasible rows
    with pytest.raises(ValueError, match="batch"):
        rl.gpu_table(batch=0)


def test_gpu_table_prints_missing_prices_as_a_dash_and_states_the_prefill_threshold():
    t = rl.gpu_table("Llama-3.1-8B", ["L4", "H100-SXM", "MI300X"], as_text=True)
    assert t.loc["L4", "$ / GPU-hour"] == t.loc["MI300X", "$ / GPU-hour"] == "–"
    assert t.loc["H100-SXM", "$ / GPU-hour"] == f"${hardware.gpu('H100-SXM').price_per_hour:.2f}"
    assert "nan" not in t.to_string().lower()
    num = rl.gpu_table("Llama-3.1-8B", ["H100-SXM"])
    assert num.loc["H100-SXM", "prefill compute-bound above (tokens)"] == pytest.approx(
        CostModel("Llama-3.1-8B", "H100-SXM").prefill_ridge_tokens())


def test_phase_cost_table_by_hand_l40s_prefills_cheaper_decodes_dearer():
    t = rl.phase_cost_table("Llama-3.1-8B", ["H100-SXM", "L40S", "A100-80GB", "L4"], prompt=2000,
                            output=300, max_batch=128)
    for gpu in ("H100-SXM", "L40S"):
        cm, g = CostModel("Llama-3.1-8B", gpu), hardware.gpu(gpu)
        batch = min(128, int(cm.kv_capacity_tokens // 2300))
        usd_s = g.price_per_hour / 3600
        assert t.loc[gpu, "decode batch"] == batch
        assert t.loc[gpu, "prefill $/M tokens"] == pytest.approx(cm.prefill(2000).time / 2000 * usd_s * 1e6)
        assert t.loc[gpu, "decode $/M tokens"] == pytest.approx(
            cm.decode(batch, 2150).time / batch * usd_s * 1e6)
        assert t.loc[gpu, "TFLOP/s per $/h"] == pytest.approx(g.flops / 1e12 / g.price_per_hour)
    # at one dated price list the L40S buys more FLOP/s per dollar than an H100, so it prefills
    # more cheaply; it buys less bandwidth per dollar, so it decodes more dearly; the A100 (lowest
    # ridge) decodes cheapest of the three
    assert t.loc["L40S", "prefill $/M tokens"] < t.loc["H100-SXM", "prefill $/M tokens"]
    assert t.loc["L40S", "decode $/M tokens"] > t.loc["H100-SXM", "decode $/M tokens"]
    assert t.loc["A100-80GB", "decode $/M tokens"] < t.loc["H100-SXM", "decode $/M tokens"]
    assert np.isnan(t.loc["L4", "prefill $/M tokens"]) and t.loc["L4", "price source"] == "not priced"
    text = rl.phase_cost_table("Llama-3.1-8B", ["H100-SXM", "L4"], as_text=True)
    assert text.loc["L4", "$ / GPU-hour"] == "not priced" and text.loc["L4", "decode $/M tokens"] == "–"


def test_decode_intensity_table_mla_against_ridges():
    t = rl.decode_intensity_table(("Llama-3.1-70B", "DeepSeek-V3"), gpus=("H100-SXM", "A100-80GB"))
    ds = t.loc["DeepSeek-V3"]
    assert ds["decode FLOP/pair (M)"] == pytest.approx(16.990208)
    assert ds["prefill FLOP/pair (M)"] == pytest.approx(4.99712)
    assert ds["attention FLOP/B"] == pytest.approx(16_990_208 / 70_272)
    assert ds["÷ H100-SXM ridge"] == pytest.approx(16_990_208 / 70_272 / (989e12 / 3.35e12))
    assert ds["÷ A100-80GB ridge"] > 1 > ds["÷ H100-SXM ridge"] > 0.7
    assert t.loc["Llama-3.1-70B", "÷ A100-80GB ridge"] < 0.1


def test_plot_rooflines_takes_intensities_and_colours_lines_between_ridges():
    ax = rl.plot_rooflines(["H100-SXM", "A100-80GB"], steps={"low": 10.0, "between": 200.0,
                                                             "high": 1000.0})
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":" and len(ln.get_xdata())]
    colours = {float(ln.get_xdata()[0]): ln.get_color() for ln in lines}
    assert colours == {10.0: "tab:blue", 200.0: "tab:olive", 1000.0: "tab:red"}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "step: bound depends on the GPU" in legend and "step: memory-bound on every GPU" in legend
    ax = rl.plot_steps_on_roofline(CostModel("Llama-3.1-8B", "H100-SXM"),
                                   {"d": CostModel("Llama-3.1-8B", "H100-SXM").decode(1, 0)})
    assert [t.get_text() for t in ax.get_legend().get_texts()][-2:] == ["memory-bound step",
                                                                       "compute-bound step"]


def test_steps_on_roofline_use_the_fp8_roof_for_fp8_weights():
    cm = CostModel("Llama-3.1-8B", "H100-SXM", dtype="fp8")
    ax = rl.plot_steps_on_roofline(cm, {"p": cm.prefill(4096)})
    roof = ax.get_lines()[0]
    assert max(roof.get_ydata()) == pytest.approx(1979.0)
    assert "FP8 peak" in ax.get_legend().get_texts()[0].get_text()


def test_glossary_numbers_follow_from_the_library():
    # the glossary's entries on ridge, prefill, decode and MLA quote these numbers; recompute them
    import re
    from pathlib import Path

    from pdlib import models
    text = " ".join((Path(__file__).resolve().parents[1] / "book" / "glossary.md").read_text().split())
    thr = rl.gpu_table("Llama-3.1-8B")["prefill compute-bound above (tokens)"]
    want = (f"from {thr.min():.0f} on an {thr.idxmin()} to {thr.max():.0f} on an {thr.idxmax()} for "
            f"Llama-3.1-8B in BF16 ({thr['H100-SXM']:.0f} on an H100-SXM)")
    assert want in text
    ds = CostModel("DeepSeek-V3", "H200-SXM", tp=8, dtype="fp8").prefill_ridge_tokens()
    m = re.search(r"about ([\d,]+) for DeepSeek-V3 on eight H200s", text)
    assert m and float(m.group(1).replace(",", "")) == pytest.approx(ds, rel=0.05)
    for g, word in (("H100-SXM", "295 FLOP/B on an H100-SXM"), ("A100-80GB", "153 on an A100-80GB")):
        assert f"{hardware.gpu(g).ridge:.0f}" in word and word in text
    dsm = models.get("DeepSeek-V3")
    assert f"{dsm.attention_flops_per_pair / 1e6:.1f} MFLOP per pair over DeepSeek-V3's 61 layers" in text
    assert f"{dsm.decode_attention_flops_per_pair / 1e6:.1f} MFLOP per pair, which puts" in text
    assert f"absorbed attention does {dsm.decode_attention_intensity():.0f} FLOP per byte" in text
    assert f"({models.get('Llama-3.1-70B').decode_attention_intensity():.0f} for Llama-3.1-70B)" in text
    notation = " ".join((Path(__file__).resolve().parents[1] / "book" / "notation.md").read_text().split())
    assert f"({dsm.attention_flops_per_pair / 1e6:.1f} MFLOP for DeepSeek-V3)" in notation
    assert f"{dsm.decode_attention_flops_per_pair / 1e6:.1f} MFLOP per pair for DeepSeek-V3" in notation
