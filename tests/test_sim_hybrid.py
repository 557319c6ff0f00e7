"""Conditional disaggregation (prefill locally when short) and prefix-cache hits in the simulator,
plus the prefix-cache replay helpers of pdlib.workload."""
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import pdlib
from pdlib import sim
from pdlib import workload as wl
from pdlib.models import attention_pairs
from pdlib.workload import Workload

MODEL, GPU, LINK = "Llama-2-7B", "A100-80GB", "IB-NDR-400G"
CM = pdlib.CostModel(MODEL, GPU)


def wl_ns(arrival, prompt, output, cached=None):
    """A workload as the simulator reads it; ``cached`` only when given (no column otherwise)."""
    n = len(arrival)
    w = SimpleNamespace(arrival=np.asarray(arrival, float),
                        prompt=np.broadcast_to(np.asarray(prompt), n).astype(np.int64),
                        output=np.broadcast_to(np.asarray(output), n).astype(np.int64))
    if cached is not None:
        w.cached = np.broadcast_to(np.asarray(cached), n).astype(np.int64)
    return w


def disagg(**kw):
    return sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link=LINK, **kw)


def mixed(n=200, rate=3.0, seed=5):
    """Prompts from 20 to 3,000 tokens, outputs 10 to 150: some short prefills, some long."""
    return wl.poisson(rate, n, wl.uniform(20, 3000), wl.uniform(10, 150), seed=seed)


# ------------------------------------------------------------------ conditional disaggregation
def test_local_prefill_none_and_zero_are_pure_disaggregation():
    w = mixed()
    base = sim.simulate(disagg(), w)
    for lp in (None, 0):
        res = sim.simulate(disagg(local_prefill=lp), w)
        pd.testing.assert_frame_equal(res.requests, base.requests)
        pd.testing.assert_frame_equal(res.timeline, base.timeline)
    df = base.requests
    assert (df.prefill_site == "prefill").all() and (df.transfer_time > 0).all()
    assert base.summary()["local_prefill_frac"] == 0.0
    # the decode instance never prefills (its policy is still decode-only continuous batching)
    tl = base.timeline
    assert (tl[tl.role == "decode"].n_prefill_tokens == 0).all()


def test_local_prefill_above_every_prompt_runs_all_on_decode():
    w = mixed(n=120)
    res = sim.simulate(disagg(local_prefill=int(w.prompt.max()), decode_chunk=256), w)
    df, tl = res.requests, res.timeline
    assert (df.status == "finished").all()
    assert (df.prefill_site == "decode").all() and (df.transfer_time == 0).all()
    assert (df.instance == 1).all()                       # the decode instance of 1P1D
    assert (tl.role == "decode").all()                    # the prefill instance never ran a step
    assert tl.n_prefill_tokens.sum() == w.prompt.sum()
    assert (tl.n_prefill_tokens + tl.n_decode <= 256).all()   # chunked token budget per step
    assert res.summary()["local_prefill_frac"] == 1.0
    # ... which is exactly a colocated chunked engine on the decode GPU
    colo = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked", chunk_size=256), w)
    np.testing.assert_array_equal(res._q.token_time, colo._q.token_time)


def test_threshold_splits_by_prefill_work():
    prompt = [100, 600, 300, 2000, 50, 301, 2000]
    cached = [0, 0, 0, 0, 0, 0, 1800]                     # the last needs only 200 tokens computed
    w = Workload(np.arange(7) * 0.05, prompt, [20] * 7, cached=cached)
    res = sim.simulate(disagg(local_prefill=300), w)
    df = res.requests
    local = np.array(prompt) - np.array(cached) <= 300
    assert list(df.prefill_site) == ["decode" if x else "prefill" for x in local]
    assert (df.transfer_time[local] == 0).all() and (df.transfer_time[~local] > 0).all()
    assert res.summary()["local_prefill_frac"] == pytest.approx(4 / 7)
    assert (df.status == "finished").all()
    # a bigger mixed workload: the local count is the number of prompts at or below the threshold
    w = mixed()
    for lp in (256, 1000):
        df = sim.simulate(disagg(local_prefill=lp, n_prefill=2, n_decode=2), w).requests
        assert (df.prefill_site == "decode").sum() == (w.prompt <= lp).sum() > 0
        assert (df.instance[df.prefill_site == "decode"] >= 2).all()      # decode instances: 2, 3
        assert (df.instance[df.prefill_site == "prefill"] < 2).all()


def test_local_prefill_of_one_request_alone():
    P, O = 400, 3
    res = sim.simulate(disagg(local_prefill=P, decode_chunk=512), wl_ns([0.0], P, O))
    t1 = CM.step([(P, 0)]).time
    t2 = t1 + CM.decode(1, P).time
    np.testing.assert_allclose(res.token_times(0)[:2], [t1, t2], rtol=1e-9)
    assert res.requests.ttft[0] == pytest.approx(t1, rel=1e-9)
    assert res.requests.transfer_time[0] == 0


def test_short_prefills_on_decode_lower_ttft_at_light_load():
    """Short prompts skip the link: with a slow network their TTFT drops by the transfer."""
    w = wl.poisson(1.0, 100, wl.uniform(50, 400), 32, seed=1)
    kw = dict(link="100GbE", transfer="whole")
    pure = sim.simulate(sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, **kw), w)
    hyb = sim.simulate(sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, local_prefill=512,
                                         **kw), w)
    assert hyb.summary()["local_prefill_frac"] == 1.0
    assert hyb.requests.ttft.mean() < pure.requests.ttft.mean() - 0.5 * pure.requests.transfer_time.mean()


def test_bad_local_prefill_and_decode_chunk():
    for bad in (-1, 1.5, "short", True):
        with pytest.raises(ValueError, match="local_prefill"):
            disagg(local_prefill=bad)
    with pytest.raises(ValueError, match="decode_chunk"):
        disagg(local_prefill=100, decode_chunk=0)
    assert disagg(local_prefill=np.int64(7)).local_prefill == 7


def test_colocated_site_and_summary_keys():
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, kv_tokens=1024),
                       wl_ns([0.0, 0.1], [100, 2000], 10))
    df, s = res.requests, res.summary()
    assert list(df.prefill_site) == ["both", ""]          # the second never fits: rejected on arrival
    assert np.isnan(s["local_prefill_frac"])
    assert s["prefix_hit_frac"] == 0.0


# ------------------------------------------------------------------ prefix-cache hits in the simulator
@pytest.mark.parametrize("make", [
    lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="static"),
    lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="continuous"),
    lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked"),
    lambda: disagg(),
    lambda: disagg(local_prefill=800),
])
def test_cached_zeros_equal_no_column(make):
    w = mixed(n=100)
    plain = SimpleNamespace(arrival=w.arrival, prompt=w.prompt, output=w.output)
    a, b = sim.simulate(make(), plain), sim.simulate(make(), w.with_cached(0))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    assert (a.requests.cached == 0).all()


@pytest.mark.parametrize("P, h", [(1000, 0), (1000, 700), (2048, 2047)])
def test_one_request_with_cached_prefix_continuous(P, h):
    O = 3
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU), wl_ns([0.0], P, O, cached=h))
    t1 = CM.step([(P - h, h)]).time
    t2 = t1 + CM.decode(1, P).time                         # decodes read the whole P-token context
    t3 = t2 + CM.decode(1, P + 1).time
    np.testing.assert_allclose(res.token_times(0), [t1, t2, t3], rtol=1e-9)
    row, tl = res.requests.iloc[0], res.timeline
    assert row.ttft == pytest.approx(t1, rel=1e-9) and row.cached == h
    assert tl.n_prefill_tokens[0] == P - h
    assert tl.kv_tokens_used[0] == -(-P // 16) * 16        # blocks for all P tokens from admission


def test_one_request_with_cached_prefix_chunked():
    P, h = 1000, 300                                        # chunks (512, 300) then (188, 812)
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked", chunk_size=512),
                       wl_ns([0.0], P, 1, cached=h))
    first = CM.cost(1, 512, h, attention_pairs(512, h), logits=0).time
    second = CM.cost(1, 188, h + 512, attention_pairs(188, h + 512), logits=1).time
    assert res.requests.ttft[0] == pytest.approx(first + second, rel=1e-9)
    assert list(res.timeline.n_prefill_tokens) == [512, 188]


def test_cached_prefix_disaggregated_transfers_whole_kv():
    P, h = 2048, 1536
    c = sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE", transfer="whole")
    df = sim.simulate(c, wl_ns([0.0], P, 3, cached=h)).requests
    want = pdlib.kv_transfer_time(MODEL, P, "100GbE", mode="whole")      # all P tokens cross the link
    assert df.transfer_time[0] == pytest.approx(want, rel=1e-9)
    assert df.ttft[0] == pytest.approx(CM.step([(P - h, h)]).time + want, rel=1e-9)


def test_cached_prefix_lowers_ttft_at_low_load():
    w = wl.poisson(1.0, 200, wl.uniform(1000, 4000), 32, seed=2)
    for make in (lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked"), lambda: disagg()):
        cold = sim.simulate(make(), w)
        warm = sim.simulate(make(), wl.with_cached_fraction(w, 0.75))
        assert warm.requests.ttft.mean() < 0.6 * cold.requests.ttft.mean()
        assert warm.summary()["prefix_hit_frac"] == pytest.approx(0.75, abs=1e-3)
        assert (warm.requests.status == "finished").all()


def test_preempted_request_reprefill_skips_cached_prefix():
    P, O, h = 150, 100, 100
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, kv_tokens=400, block_size=16),
                       wl_ns([0.0, 0.0], P, O, cached=h))
    df, tl = res.requests, res.timeline
    assert (df.status == "finished").all() and df.preemptions[1] >= 1
    assert tl.n_prefill_tokens[0] == 2 * (P - h)
    assert (tl.kv_tokens_used <= 400).all()
    # each later prefill step is a re-prefill of request 1: P + g − h tokens, g = tokens it had made
    later = tl[(tl.n_prefill_tokens > 0) & (tl.index > 0)]
    assert len(later) == df.preemptions[1]
    t1 = res.token_times(1)
    for _, row in later.iterrows():
        g = int((t1 < row.start).sum())
        assert row.n_prefill_tokens == P + g - h


# ------------------------------------------------------------------ workload: the cached column
def test_workload_cached_column_is_carried():
    w = Workload([0.0, 1.0, 2.0], [10, 20, 30], [1, 2, 3], name="c", cached=[0, 5, 29])
    assert w.cached.tolist() == [0, 5, 29] and w[1].cached == 5
    assert w[1:].cached.tolist() == [5, 29] and w.head(1).cached.tolist() == [0]
    assert w.scale_rate(2.0).cached.tolist() == [0, 5, 29]
    assert w.with_rate(4.0).cached.tolist() == [0, 5, 29]
    assert w.to_frame().cached.tolist() == [0, 5, 29]
    assert "cached" not in Workload([0.0], [5], [1]).to_frame()
    assert Workload.from_requests(list(w)).cached.tolist() == [0, 5, 29]
    m = wl.merge(w, Workload([0.5], [7], [1]))
    assert m.cached.tolist() == [0, 0, 5, 29]
    assert Workload([0.0], [5], [1]).cached.tolist() == [0]
    assert w.with_cached(3).cached.tolist() == [3, 3, 3]
    with pytest.raises(ValueError):
        w.cached[0] = 1


@pytest.mark.parametrize("cached, match", [
    ([0, 10], r"cached\[1\] = 10 with prompt\[1\] = 10"),
    ([-1, 0], r"cached\[0\] = -1"),
    ([0], "one entry per request"),
    ([0, 1.5], r"whole.*cached\[1\]"),
])
def test_workload_cached_validation(cached, match):
    with pytest.raises(ValueError, match=match):
        Workload([0.0, 1.0], [5, 10], [1, 1], cached=cached)


def test_simulate_checks_cached():
    with pytest.raises(ValueError, match="cached"):
        sim.simulate(sim.colocated(model=MODEL, gpu=GPU), wl_ns([0.0], 10, 2, cached=10))


def test_with_cached_fraction():
    w = Workload([0.0, 1.0, 2.0], [1, 10, 101], [1, 1, 1])
    assert wl.with_cached_fraction(w, 0.5).cached.tolist() == [0, 5, 50]
    assert wl.with_cached_fraction(w, 1.0).cached.tolist() == [0, 9, 100]
    assert wl.with_cached_fraction(w, 0.0).cached.tolist() == [0, 0, 0]
    for bad in (-0.1, 1.5, float("nan"), "half"):
        with pytest.raises(ValueError, match="fraction"):
            wl.with_cached_fraction(w, bad)


# ------------------------------------------------------------------ prefix_hits: replaying a KV store
def test_prefix_hits_unbounded_hand_computed():
    blocks = [(1, 2, 3), (1, 2, 4), (5, 2, 3), (1, 2, 3, 6), ()]
    # request 1 shares 1, 2; request 2 starts with an unseen block (2, 3 later do not count);
    # request 3 shares 1, 2, 3
    assert wl.prefix_hits(blocks, block_tokens=1).tolist() == [0, 2, 0, 3, 0]
    assert wl.prefix_hits(blocks, block_tokens=512).tolist() == [0, 1024, 0, 1536, 0]
    # capped at prompt − 1: a 1,300-token prompt whose three blocks all hit computes 1 token
    assert wl.prefix_hits([(7, 8, 9), (7, 8, 9)], 512, prompt=[1300, 1300]).tolist() == [0, 1299]


def test_prefix_hits_lru_eviction_hand_computed():
    # capacity 2 blocks; a request's blocks are touched last-to-first, so its head is the newest
    blocks = [(1, 2), (1, 3), (2,), (1,), (3,)]
    # after r0: [2, 1]; r1 hits 1 -> [3, 1] (2 evicted); r2 misses 2 -> [1, 2] (3 evicted)
    # r3 hits 1 -> [2, 1]; r4 misses 3 -> [1, 3]
    assert wl.prefix_hits(blocks, 1, cache_blocks=2).tolist() == [0, 1, 0, 1, 0]
    assert wl.prefix_hits(blocks, 1).tolist() == [0, 1, 1, 1, 1]                 # unbounded
    assert wl.prefix_hits(blocks, 1, cache_blocks=0).tolist() == [0] * 5
    # a request longer than the cache keeps its leading blocks
    assert wl.prefix_hits([(1, 2, 3), (1, 2, 3)], 1, cache_blocks=2).tolist() == [0, 2]


def test_with_prefix_cache_and_errors():
    w = Workload([0.0, 1.0, 2.0], [1000, 1100, 600], [1, 1, 1], prefix_blocks=((1, 2), (1, 2, 3), (1, 2)))
    c = wl.with_prefix_cache(w)
    assert c.cached.tolist() == [0, 1024, 599] and c.prefix_blocks == w.prefix_blocks
    assert wl.with_prefix_cache(w, cache_blocks=0).cached.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="with_cached_fraction"):
        wl.with_prefix_cache(Workload([0.0], [5], [1]))
    with pytest.raises(ValueError, match="block_tokens"):
        wl.prefix_hits([(1,)], block_tokens=0)
    with pytest.raises(ValueError, match="cache_blocks"):
        wl.prefix_hits([(1,)], cache_blocks=-1)
    with pytest.raises(ValueError, match="one entry per request"):
        wl.prefix_hits([(1,)], prompt=[1, 2])


# ------------------------------------------------------------------ the real Mooncake traces (when present)
def _traces_dir() -> Path:
    env = os.environ.get("PDLIB_TRACES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "traces"


@pytest.mark.parametrize("name", ["mooncake-conversation", "mooncake-synthetic"])
def test_mooncake_prefix_hit_rate(name):
    path = _traces_dir() / wl.trace_info(name).file
    if not path.exists():
        pytest.skip(f"real traces not found in {path.parent} (set PDLIB_TRACES to their folder)")
    w = wl.load_mooncake_jsonl(path)
    hits = wl.prefix_hits(w.prefix_blocks)                 # unbounded store, 512-token blocks
    n_blocks = sum(len(b) for b in w.prefix_blocks)
    # Mooncake's hash ids are chained (an id stands for its whole prefix), so the prefix hits of an
    # unbounded store are exactly the blocks seen before: the trace's stored block_reuse
    assert hits.sum() / 512 / n_blocks == pytest.approx(wl.trace_info(name).block_reuse, abs=0.001)
    c = wl.with_prefix_cache(w)
    token_rate = c.cached.sum() / c.prompt.sum()
    bounded = wl.with_prefix_cache(w, cache_blocks=10_000).cached.sum() / c.prompt.sum()
    assert 0 < bounded < token_rate
    want = {"mooncake-conversation": 0.374, "mooncake-synthetic": 0.651}[name]
    assert token_rate == pytest.approx(want, abs=0.001)
