"""Chapter 10 exercise checkers: the solutions pass, plausible wrong answers fail."""
from __future__ import annotations

import pytest

from pdlib import models, workload
from pdlib import reproduce as rp
from pdlib.exercises import check, ids


def test_ch09_exercises_registered():
    assert {"ch10.kv_gb_mooncake", "ch10.emission_h100", "ch10.slo_scale_3p1d"} <= set(ids())
    assert check("ch10.kv_gb_mooncake", None).ok is None


def test_kv_gb_mooncake():
    mean = workload.trace_info("mooncake-conversation").prompt_stats.mean
    gb = mean * models.get("Llama-2-70B").kv_bytes_per_token() / 1e9
    # 2 (K, V) × 80 layers × 8 KV heads × 128 dims × 2 bytes = 327,680 B per token (Llama-2-70B config.json)
    assert gb == pytest.approx(12_035 * 327_680 / 1e9)
    assert check("ch10.kv_gb_mooncake", gb).ok
    assert check("ch10.kv_gb_mooncake", 3.94).ok
    assert not check("ch10.kv_gb_mooncake", gb * 8).ok         # counted 64 KV heads (MHA)
    assert not check("ch10.kv_gb_mooncake", gb / 8).ok         # one TP rank's shard only


def test_emission_h100():
    g = rp.kv_emission_gbps(8192, gpu="H100-SXM")
    assert check("ch10.emission_h100", g).ok
    assert not check("ch10.emission_h100", g / 8).ok           # bytes instead of bits
    assert not check("ch10.emission_h100", rp.kv_emission_gbps(8192)).ok   # the A100 node


def test_slo_scale_3p1d():
    res = rp.distserve_slo_scale()
    s = res["configs"].set_index("config").scale_at_target
    assert check("ch10.slo_scale_3p1d", s["3P1D"]).ok
    assert not check("ch10.slo_scale_3p1d", s["2P1D"]).ok      # the best split, not 3P1D
    assert not check("ch10.slo_scale_3p1d", 1.0).ok
