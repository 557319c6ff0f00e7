"""Calibration: exact recovery of known knobs from synthetic times, and a real CPU fit."""
from __future__ import annotations

import numpy as np
import pytest

import pdlib
from pdlib import calibrate as cal
from pdlib.hardware import GPU

SHAPES = ([[(1, 512)] * b for b in (1, 8, 64, 256)] + [[(c, 0)] for c in (64, 512, 4096)]
          + [[(256, 1024)] + [(1, 2048)] * 32, [(2048, 0), (1, 100)]])


@pytest.mark.parametrize("eta_f,eta_w,overhead", [(0.55, 0.7, 2e-4), (0.3, 0.9, 0.0), (0.8, 0.25, 1e-3)])
def test_recovers_known_knobs_from_synthetic_steps(eta_f, eta_w, overhead):
    truth = pdlib.CostModel("Llama-2-7B", "A100-80GB", flops_efficiency=eta_f, bw_efficiency=eta_w,
                            overhead=overhead)
    measurements = [(items, truth.step(items).time) for items in SHAPES]
    fit = cal.calibrate(pdlib.CostModel("Llama-2-7B", "A100-80GB"), measurements)
    assert fit.flops_efficiency == pytest.approx(eta_f, rel=1e-6)
    assert fit.bw_efficiency == pytest.approx(eta_w, rel=1e-6)
    assert fit.overhead == pytest.approx(overhead, abs=1e-9)
    assert np.max(cal.relative_errors(fit, measurements)) < 1e-6


def test_calibrate_rejects_empty_or_nonpositive_times():
    cm = pdlib.CostModel("Llama-2-7B", "A100-80GB")
    with pytest.raises(ValueError, match="positive seconds"):
        cal.calibrate(cm, [([(1, 10)], 0.0)])
    with pytest.raises(ValueError, match="at least one"):
        cal.calibrate(cm, [])


def test_real_cpu_fit_beats_uncalibrated_on_held_out_shapes():
    torch = pytest.importorskip("torch")
    from pdlib import engine
    m = engine.load(engine.tiny_spec(n_layers=2, hidden=256, n_heads=4, n_kv_heads=2, ffn=704,
                                     vocab=4000), dtype=torch.float32)
    gpu = cal.device_as_gpu("cpu", repeats=2)
    assert isinstance(gpu, GPU) and gpu.flops > 1e8 and gpu.mem_bw > 1e8
    cm = pdlib.CostModel(m.spec, gpu, dtype="fp32")
    train = [[(1, 32)] * b for b in (1, 16)] + [[(c, 0)] for c in (16, 128, 384)] + [[(64, 0), (1, 64)]]
    held_out = [[(1, 64)] * 8, [(256, 0)], [(32, 32)] + [(1, 32)] * 4]
    measured_train = cal.measure_steps(m, train, repeats=3)
    measured_test = cal.measure_steps(m, held_out, repeats=3)
    assert all(s > 0 for _, s in measured_train + measured_test)
    fit = cal.calibrate(cm, measured_train)
    assert 0 < fit.flops_efficiency <= 1 and 0 < fit.bw_efficiency <= 1 and fit.overhead >= 0
    before = np.median(cal.relative_errors(cm, measured_test))
    after = np.median(cal.relative_errors(fit, measured_test))
    assert after < before


def test_measure_steps_statistic_and_bad_name(monkeypatch):
    # the step times are faked so the statistic is checkable: repeats 3 → samples 1, 2, 9 ms
    torch = pytest.importorskip("torch")
    from pdlib import engine
    m = engine.load(engine.tiny_spec(n_layers=1, hidden=32, n_heads=2, n_kv_heads=1, ffn=64, vocab=50),
                    dtype=torch.float32)
    fake = iter([0.5, 1e-3, 2e-3, 9e-3] * 2)             # warm-up, then the 3 timed repeats
    real_step = engine.Runner.step

    def step(self, items):
        out = real_step(self, items)
        self.history[-1] = engine.StepRecord(self.history[-1].items, next(fake))
        return out
    monkeypatch.setattr(engine.Runner, "step", step)
    # a 4-token prefill with no context: no untimed context step, so each call takes 4 fakes
    (_, lo), = cal.measure_steps(m, [[(4, 0)]], repeats=3, stat="min")
    (_, mid), = cal.measure_steps(m, [[(4, 0)]], repeats=3, stat="median")
    assert lo == pytest.approx(1e-3) and mid == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="stat must be 'min' or 'median'"):
        cal.measure_steps(m, [[(4, 0)]], stat="mean")


def test_engine_times_as_one_cost_model_give_the_same_step_times():
    cm = pdlib.CostModel("Llama-3.1-8B", "H100-SXM", flops_efficiency=0.5, bw_efficiency=0.7, overhead=2e-4)
    t = cal.EngineTimes(cm, context_seconds=3e-8, loop_overhead=4e-4)
    one = t.as_cost_model()
    assert one.context_seconds == 3e-8 and one.overhead == pytest.approx(6e-4)
    for items in ([(1, 4096)], [(1, 100)] * 32, [(512, 0), (1, 2000)], [(2048, 0)]):
        assert one.step(items).time == pytest.approx(t.step_time(items), rel=1e-12)
    # the term is outside the roofline: 1 µs/token on 1,000 cached tokens adds exactly 1 ms
    slow = cm.with_(context_seconds=1e-6)
    assert slow.decode(1, 1000).time - cm.decode(1, 1000).time == pytest.approx(1e-3)
    assert slow.decode(1, 1000).memory_time == cm.decode(1, 1000).memory_time
    with pytest.raises(ValueError, match="context_seconds must be >= 0"):
        cm.with_(context_seconds=-1e-9)
    # a model that already has a context term is not refitted on top of it (it would count twice)
    with pytest.raises(ValueError, match="context_seconds=0"):
        cal.calibrate_with_context(slow, [([(1, 1000)], 0.01), ([(1, 2000)], 0.02)])


def test_overhead_model_has_the_kernels_without_the_work():
    # the overhead model's step is the engine's fixed cost only if its own work is negligible:
    # by the roofline, under 1% of the calibration model's bytes and FLOPs for a decode step
    torch = pytest.importorskip("torch")
    from pdlib import engine
    big = cal.calibration_spec(32 * 2**20)                  # chapter 06's model on a 32 MiB L3
    idle = cal.overhead_spec(big)
    assert (idle.n_layers, idle.n_heads, idle.n_kv_heads) == (big.n_layers, big.n_heads, big.n_kv_heads)
    roof = pdlib.hardware.gpu("A100-80GB")
    a, b = (pdlib.CostModel(s, roof, dtype="fp32").decode(1, 128) for s in (idle, big))
    assert a.bytes < 0.01 * b.bytes and a.flops < 0.01 * b.flops
    with pytest.raises(ValueError, match="head_dim must be an even number"):
        cal.overhead_spec(big, head_dim=3)
    # measured: the same kernels, less time (the step of the big model also moves its weights)
    steps = [[(1, 64)]]
    (_, t_idle), = cal.measure_steps(engine.load(idle, dtype=torch.float32), steps, repeats=5)
    (_, t_big), = cal.measure_steps(engine.load(big, dtype=torch.float32), steps, repeats=5)
    assert 0 < t_idle < t_big


def test_memcpy_bandwidth_counts_read_and_write():
    pytest.importorskip("torch")
    m = cal.memcpy_bandwidth("cpu", nbytes=8 * 2**20, repeats=2)
    assert m.bytes == 2 * 8 * 2**20 and m.flops == 0 and m.bytes_per_s > 1e8
