"""The last-level-cache reader and the calibration model chosen to exceed the cache (no torch)."""
from __future__ import annotations

import dataclasses

import pytest

import pdlib
from pdlib import calibrate as cal


def _fake_sysfs(root, caches, cpu=0):
    """A sysfs ``cpu<cpu>/cache`` folder: one ``index<i>`` per (level, type, size text, shared
    CPUs) as Linux writes them. Returns ``root`` (the ``/sys/devices/system/cpu`` stand-in)."""
    for i, (level, kind, size, shared) in enumerate(caches):
        d = root / f"cpu{cpu}" / "cache" / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
        (d / "shared_cpu_list").write_text(f"{shared}\n")
    return root


ZEN = [(1, "Data", "32K", "{c}"), (1, "Instruction", "32K", "{c}"), (2, "Unified", "1024K", "{c}"),
       (3, "Unified", "32768K", "{l3}")]


def _zen(root, cpu, l3_shared):
    return _fake_sysfs(root, [(lv, k, sz, sh.format(c=cpu, l3=l3_shared)) for lv, k, sz, sh in ZEN], cpu)


def test_parse_cache_size_reads_sysfs_and_lscpu_spellings():
    assert cal.parse_cache_size("32768K\n") == 32 * 2**20
    assert cal.parse_cache_size("1024K") == 2**20
    assert cal.parse_cache_size("32 MiB") == 32 * 2**20
    assert cal.parse_cache_size("1.5M") == 3 * 2**19
    assert cal.parse_cache_size("524288") == 524288
    with pytest.raises(ValueError, match="cannot read a cache size from 'big'"):
        cal.parse_cache_size("big")


def test_sysfs_reader_takes_the_highest_data_or_unified_level(tmp_path):
    # an AMD Zen core as Linux lists it: L1d, L1i, L2, L3
    root = _zen(tmp_path, 0, "0")
    llc = cal.last_level_cache("cpu", sysfs=root, cpus=[0])
    assert (llc.bytes, llc.level, llc.mib, llc.instances) == (33554432, 3, 32.0, 1)
    assert llc.source == str(root / "cpu0" / "cache" / "index3" / "size")


def test_a_shared_cache_counts_once_and_separate_ones_add_up(tmp_path):
    shared = tmp_path / "one"
    for cpu in (0, 1):                       # two cores of one complex: one L3, "0-1"
        _zen(shared, cpu, "0-1")
    assert cal.read_sysfs_cache(shared, cpus=[0, 1]).bytes == 32 * 2**20
    apart = tmp_path / "two"
    for cpu in (0, 1):                       # two complexes, an L3 each: 64 MiB between them
        _zen(apart, cpu, str(cpu))
    both = cal.read_sysfs_cache(apart, cpus=[0, 1])
    assert (both.bytes, both.instances) == (64 * 2**20, 2) and both.source.endswith("and 1 more")
    assert cal.read_sysfs_cache(apart, cpus=[1]).bytes == 32 * 2**20        # only the CPUs asked


def test_sysfs_reader_skips_instruction_caches_and_broken_entries(tmp_path):
    # no L3; the biggest entry is an instruction cache, one entry has no size file
    root = _fake_sysfs(tmp_path, [(1, "Data", "48K", "0"), (2, "Instruction", "4096K", "0"),
                                  (2, "Unified", "2048K", "0")])
    broken = tmp_path / "cpu0" / "cache" / "index3"
    broken.mkdir()
    (broken / "level").write_text("3\n")
    llc = cal.read_sysfs_cache(root, cpus=[0])
    assert (llc.bytes, llc.level) == (2 * 2**20, 2)


def test_missing_sysfs_falls_back_to_the_named_default(tmp_path, monkeypatch):
    monkeypatch.setattr(cal.sys, "platform", "linux")
    assert cal.read_sysfs_cache(tmp_path / "absent", cpus=[0]) is None
    llc = cal.last_level_cache("cpu", sysfs=tmp_path / "absent")
    assert (llc.bytes, llc.level, llc.source) == (cal.DEFAULT_LLC_BYTES, 0, "default")
    assert cal.last_level_cache("cpu", sysfs=tmp_path, default=8 * 2**20, cpus=[0]).bytes == 8 * 2**20
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        cal.last_level_cache("tpu")


@pytest.mark.parametrize("llc_mib", [1, 8, 32, 55, 96])
def test_calibration_model_exceeds_the_cache_it_was_given(tmp_path, llc_mib):
    root = _fake_sysfs(tmp_path, [(3, "Unified", f"{llc_mib * 1024}K", "0")])
    llc = cal.last_level_cache("cpu", sysfs=root, cpus=[0])
    spec = cal.calibration_spec(llc, factor=4.0)
    read = spec.step_weight_bytes(1, "fp32")
    assert read >= 4.0 * llc.bytes
    # the smallest such width: one step (128) narrower falls short of the bound
    if spec.hidden > 256:
        narrower = cal.calibration_spec(llc.bytes, factor=4.0, max_hidden=spec.hidden - 128)
        assert narrower.step_weight_bytes(1, "fp32") < 4.0 * llc.bytes
    # the chapter's shape: 4 layers, 8 heads sharing 2 KV heads, ffn = 2 hidden
    assert (spec.n_layers, spec.n_heads, spec.n_kv_heads, spec.ffn) == (4, 8, 2, 2 * spec.hidden)
    assert spec.head_dim * spec.n_heads == spec.hidden and spec.hidden % 128 == 0


def test_calibration_model_for_this_machine_and_its_weight_count():
    llc = cal.last_level_cache("cpu")
    spec = cal.calibration_spec(llc)
    assert spec.step_weight_bytes(1, "fp32") >= 4 * llc.bytes or spec.hidden == 2048
    # 4 layers of 8.5·h² weights (q, o: h²; k, v: h²/4; gate, up, down: 2h² each) + LM head
    h = 1024
    one = cal.calibration_spec(33.0e6, factor=4.0)
    assert one.hidden == h
    assert one.step_weight_bytes(1, "fp32") == pytest.approx(4 * (34 * h * h + 1000 * h + 9 * h), rel=0)
    # a 32 MiB L3 needs hidden 1,024 (140 MiB read per step, 4.37x); a 1 MiB cache the 256 floor
    assert cal.calibration_spec(32 * 2**20).hidden == 1024
    assert cal.calibration_spec(2**20).hidden == 256


def test_calibration_model_stops_at_max_hidden_and_rejects_bad_input():
    capped = cal.calibration_spec(2**30)
    assert capped.hidden == 2048 and capped.step_weight_bytes(1, "fp32") < 4 * 2**30
    assert capped.params == pytest.approx(147e6, rel=0.01)                # the docstring's "147 M"
    for bad in (dict(cache_bytes=0), dict(cache_bytes=2**20, factor=0), dict(cache_bytes=2**20, n_layers=0)):
        with pytest.raises(ValueError, match="need cache_bytes > 0"):
            cal.calibration_spec(**bad)


def test_knobs_at_bounds_names_each_pinned_knob():
    cm = pdlib.CostModel("Llama-2-7B", "A100-80GB")
    assert cal.knobs_at_bounds(cm.with_(flops_efficiency=0.6, bw_efficiency=0.7, overhead=1e-4)) == ()
    assert cal.knobs_at_bounds(cm.with_(bw_efficiency=1.0, overhead=0.0)) == ("η_W = 1", "overhead = 0")
    assert cal.knobs_at_bounds(cm.with_(flops_efficiency=1e-4, overhead=1e-3)) == ("η_F = 1e-4",)
    # the cache-resident case: weights read 3x faster than the memory roof the fit is set
    # against (a model in cache). η_W would have to be 3; the fit pins it at 1, and with the
    # memory time 3x too long it has no room left for the overhead either.
    roof = pdlib.hardware.gpu("A100-80GB")
    cache_fast = cm.with_(gpu=dataclasses.replace(roof, mem_bw=3 * roof.mem_bw),
                          flops_efficiency=0.5, bw_efficiency=1.0, overhead=2e-4)
    shapes = [[(1, 512)] * b for b in (1, 4, 16)] + [[(c, 0)] for c in (64, 2048)]
    steps = [(items, cache_fast.step(items).time) for items in shapes]
    assert cal.knobs_at_bounds(cal.calibrate(cm, steps)) == ("η_W = 1", "overhead = 0")
    # the same steps at memory speed (η_W = 1/3 of that roof): fitted inside its range
    memory = cache_fast.with_(gpu=roof, bw_efficiency=1 / 3)
    fit = cal.calibrate(cm, [(items, memory.step(items).time) for items in shapes])
    assert cal.knobs_at_bounds(fit) == () and fit.bw_efficiency == pytest.approx(1 / 3, rel=1e-6)
