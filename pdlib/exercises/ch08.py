"""Checkers for chapter 08, "How good is the model?". Every expected value is computed with pdlib
from the shipped published measurements (:mod:`pdlib.published`) and the cost models fitted to
them (:func:`pdlib.published.from_published`), never typed in."""
from __future__ import annotations

from .. import chunking as ch
from .. import published as pb
from ..cost import CostModel
from . import Expected, exercise

#: The held-out row of exercise 1: Splitwise's decode step of Llama-2-70B at tp 2 on H100-SXM with
#: 16 requests (prompts of 512 tokens, 128 output tokens: 576 cached tokens each on average).
HELDOUT = dict(source="splitwise", gpu="H100-SXM", model="Llama-2-70B", tp=2, phase="decode", batch=16)
#: Exercise 2: Sarathi-Serve's 4,095-token Yi-34B prompt (tp 2, two A100 PCIe) in 512-token chunks.
CHUNKED = dict(source="sarathi", gpu="A100-PCIe-80GB", model="Yi-34B", tp=2, prompt=4095, chunk=512)
#: Exercise 3: a decode step of Llama-2-70B on H100-SXM, 16 requests at 1,024 cached tokens, tp 2 → 4.
TP_STEP = dict(source="splitwise", gpu="H100-SXM", model="Llama-2-70B", batch=16, context=1024, tps=(2, 4))
#: Exercise 4: Splitwise's batch-1 decode steps of Llama-2-70B (tp 2) on H100-SXM.
SLOPE = dict(source="splitwise", gpu="H100-SXM", model="Llama-2-70B", tp=2)
#: Exercise 1's acceptance band (relative): the out-of-sample median error the calibration is meant
#: to reach, the chapter's 10% target (Vidur's authors report under 9% for their per-operator model).
HELDOUT_TARGET = 0.10


def heldout_row() -> pb.Row:
    """The one "test" row of :data:`HELDOUT` (ValueError if the shipped table does not have exactly one)."""
    h = HELDOUT
    found = [r for r in pb.rows(h["source"], h["gpu"], split="test")
             if r.phase == h["phase"] and r.x == h["batch"] and r.model == h["model"] and r.tp == h["tp"]]
    if len(found) != 1:
        raise ValueError(f"expected one test row for {h}, found {len(found)}")
    return found[0]


def heldout_context() -> int:
    """Cached tokens of each request of the held-out decode step (the row's mean context)."""
    return heldout_row().measurement.steps[0][0][1]


def heldout_errors() -> tuple[float, float]:
    """``(median, p90)`` of abs(calibrated − measured) ÷ measured over the test rows of the held-out
    row's source, GPU and phase (:func:`pdlib.published.error_table`): the model's error on rows
    like it."""
    h = HELDOUT
    e = pb.error_table(pb.validate(h["source"], h["gpu"])).loc[("test", h["phase"])]
    return float(e["calibrated_median"]), float(e["calibrated_p90"])


def heldout_tolerance() -> float:
    """The relative band exercise 1 accepts: :data:`HELDOUT_TARGET`, the out-of-sample error the
    calibration aims for (not the model's own error on this row, which the student should find)."""
    return HELDOUT_TARGET


def heldout_models() -> tuple[CostModel, CostModel]:
    """``(calibrated, pure roofline)`` cost models of the held-out row's deployment."""
    h = HELDOUT
    return (pb.from_published(h["model"], h["gpu"], tp=h["tp"], source=h["source"]),
            CostModel(h["model"], h["gpu"], tp=h["tp"]))


@exercise("ch08.predict_heldout", "Predict before you look. Splitwise measured a decode step of "
          "Llama-2-70B on two H100-SXM (tp 2) with 16 requests holding 576 cached tokens each: a "
          "test row, never seen by the fit. How long did the step take, in seconds? Predict it with "
          "pdlib.calibrate.from_published before reading the row.")
def predict_heldout() -> Expected:
    row, tol = heldout_row(), heldout_tolerance()
    cal, roof = heldout_models()
    items = row.measurement.steps[0]
    roof_err = roof.step(items).time / row.seconds - 1
    median, p90 = heldout_errors()
    return Expected(row.seconds, rel=tol, unit="s",
                    hint=f"from_published('{HELDOUT['model']}', '{HELDOUT['gpu']}', tp={HELDOUT['tp']}, "
                         f"source='{HELDOUT['source']}').decode({HELDOUT['batch']}, {heldout_context()}).time "
                         f"(seconds). Accepted within {tol:.0%}, the out-of-sample error the calibration "
                         f"aims for (on this GPU's held-out decode rows its median error is {median:.1%}, "
                         f"its 90th percentile {p90:.1%}). The pure roofline, CostModel('{HELDOUT['model']}', "
                         f"'{HELDOUT['gpu']}', tp={HELDOUT['tp']}), is {roof_err:+.0%} off: it has no "
                         "per-step, per-request or per-layer cost.")


def chunked_model() -> CostModel:
    """The Sarathi-calibrated cost model of :data:`CHUNKED`'s deployment."""
    c = CHUNKED
    return pb.from_published(c["model"], c["gpu"], tp=c["tp"], source=c["source"])


def fixed_seconds(cm: CostModel, items_per_step) -> float:
    """Σ over the steps of their fixed cost, ``per_step + per_layer`` of :attr:`StepCost.breakdown`."""
    total = 0.0
    for items in items_per_step:
        b = cm.step(items).breakdown
        total += float(b["per_step"]) + float(b["per_layer"])
    return total


def chunk_fixed_cost_ms() -> float:
    """Milliseconds of fixed cost (per step and per layer) the chunked prefill of :data:`CHUNKED`
    pays beyond the unchunked one, by the Sarathi calibration."""
    c, cm = CHUNKED, chunked_model()
    chunked = fixed_seconds(cm, [[item] for item in ch.chunk_schedule(c["prompt"], c["chunk"])])
    whole = fixed_seconds(cm, [[(c["prompt"], 0)]])
    return (chunked - whole) * 1e3


@exercise("ch08.chunk_fixed_cost", "With the Sarathi calibration (Yi-34B, tp 2, two A100 PCIe), how "
          "many milliseconds of fixed cost (the per-step and per-layer terms) does a 4,095-token "
          "prompt pay when it is prefilled in 512-token chunks, beyond what it pays prefilled whole?")
def chunk_fixed_cost() -> Expected:
    cm = chunked_model()
    steps = ch.chunk_steps(CHUNKED["prompt"], CHUNKED["chunk"])
    return Expected(chunk_fixed_cost_ms(), rel=0.02, unit="ms",
                    hint=f"{steps} chunk steps instead of 1: {steps - 1} extra steps, each paying cm.overhead "
                         f"({cm.overhead * 1e3:.3g} ms) plus n_layers × cm.layer_overhead "
                         f"({cm.model.n_layers} × {cm.layer_overhead * 1e6:.3g} µs). Count the extra steps, "
                         "not all of them; answer in milliseconds.")


def tp_speedups() -> tuple[float, float]:
    """``(calibrated, roofline)`` speed-up of the :data:`TP_STEP` decode step from the first tp to
    the second: time at tp 2 ÷ time at tp 4."""
    s = TP_STEP
    a, b = s["tps"]

    def t(tp, calibrated):
        cm = (pb.from_published(s["model"], s["gpu"], tp=tp, source=s["source"]) if calibrated
              else CostModel(s["model"], s["gpu"], tp=tp))
        return float(cm.decode(s["batch"], s["context"]).time)
    return t(a, True) / t(b, True), t(a, False) / t(b, False)


@exercise("ch08.tp_speedup", "Real decode steps of a 70B model barely get faster from tp 2 to tp 4. "
          "With the Splitwise H100 calibration, how many times faster is a decode step of Llama-2-70B "
          "with 16 requests at 1,024 cached tokens each on four H100-SXM (tp 4) than on two (tp 2)? "
          "(a ratio: time at tp 2 ÷ time at tp 4)")
def tp_speedup() -> Expected:
    cal, roof = tp_speedups()
    return Expected(cal, rel=0.03, unit="×",
                    hint="price both with pdlib.calibrate.from_published(..., tp=2 and tp=4, "
                         "source='splitwise') and divide the .decode(16, 1024).time. Each GPU reads half "
                         f"the weights at tp 4, so the pure roofline's ratio is {roof:.2f}×; the per-step, "
                         "per-request and per-layer costs do not shrink with tp, and the all-reduce "
                         "latency grows.")


def batch1_decodes() -> list[tuple[int, float]]:
    """``(context, seconds)`` of every :data:`SLOPE` decode row with one request, by context."""
    s = SLOPE
    out = [(r.measurement.steps[0][0][1], r.seconds) for r in pb.rows(s["source"], s["gpu"])
           if r.phase == "decode" and len(r.measurement.steps[0]) == 1 and r.model == s["model"]]
    return sorted(out)


def context_slope_ns() -> float:
    """Measured growth of the batch-1 decode step per cached token, ns: between the shortest and
    the longest context of :func:`batch1_decodes`."""
    rows = batch1_decodes()
    (c0, t0), (c1, t1) = rows[0], rows[-1]
    return (t1 - t0) / (c1 - c0) * 1e9


@exercise("ch08.context_slope", "Splitwise measured decode steps of Llama-2-70B on two H100-SXM "
          "with one request at contexts from 192 to 8,256 cached tokens. By how many nanoseconds "
          "does the step grow per cached token, from the shortest context to the longest?")
def context_slope() -> Expected:
    s = SLOPE
    cm = pb.from_published(s["model"], s["gpu"], tp=s["tp"], source=s["source"])
    kv_ns = cm.kv_bytes_per_token / (cm.gpu.mem_bw * cm.bw_efficiency) * 1e9
    return Expected(context_slope_ns(), rel=0.05, unit="ns",
                    hint="keep the rows of pdlib.published.rows('splitwise', 'H100-SXM') whose phase is "
                         "'decode' and whose step has one item; the item is (1, context). Slope = "
                         "Δseconds ÷ Δcontext between the shortest and the longest context, in ns. "
                         f"Compare it with reading one token's KV per GPU ({kv_ns:.0f} ns at the fitted "
                         f"η_W), with the calibrated model's context_seconds "
                         f"({cm.context_seconds * 1e9:.0f} ns on top of that) and with its item_seconds "
                         f"({cm.item_seconds * 1e6:.0f} µs per request).")
