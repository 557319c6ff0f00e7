"""Property tests of the simulator's invariants on random small workloads (hypothesis), with
prefix-cache hits (``cached``) and conditional disaggregation (``local_prefill``) drawn too."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdlib import sim

MODEL, GPU = "Llama-2-7B", "A100-80GB"


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.floats(0, 0.3), min_size=n, max_size=n))
    prompt = draw(st.lists(st.integers(1, 600), min_size=n, max_size=n))
    output = draw(st.lists(st.integers(1, 80), min_size=n, max_size=n))
    hit = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0]))            # share of each prompt cached
    cached = np.minimum(np.floor(hit * np.array(prompt)), np.array(prompt) - 1).astype(np.int64)
    w = SimpleNamespace(arrival=np.cumsum(gaps), prompt=np.array(prompt), output=np.array(output),
                        cached=cached)
    kind = draw(st.sampled_from(["static", "continuous", "chunked", "disaggregated"]))
    bs = draw(st.sampled_from([1, 4, 16]))
    kv = draw(st.integers(64, 2048))
    mb = draw(st.integers(1, 8))
    if kind == "disaggregated":
        c = sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE",
                              transfer=draw(st.sampled_from(["whole", "layerwise"])),
                              n_prefill=draw(st.integers(1, 3)), n_decode=draw(st.integers(1, 2)),
                              parallel_links=draw(st.sampled_from([1, 2])),
                              decode_links=draw(st.sampled_from([None, 1, 2, 4])),
                              prefill_chunk=draw(st.sampled_from([None, 64])), max_batch=mb,
                              block_size=bs, prefill_kv_tokens=kv, decode_kv_tokens=draw(st.integers(64, 2048)),
                              local_prefill=draw(st.sampled_from([None, None, 0, 100, 10_000])),
                              decode_chunk=draw(st.sampled_from([32, 512])))
    else:
        c = sim.colocated(model=MODEL, gpu=GPU, scheduler=kind, max_batch=mb, block_size=bs,
                          chunk_size=draw(st.integers(8, 512)), kv_tokens=kv,
                          instances=draw(st.integers(1, 2)),
                          router=draw(st.sampled_from(["round_robin", "least_loaded"])))
    return c, w


def _prefill_cost(c):
    return c.cost if isinstance(c, sim.Colocated) else c.prefill_cost


def _blocks(tokens, bs):
    return -(-tokens // bs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants(case):
    c, w = case
    res = sim.simulate(c, w)
    df = res.requests
    # every request ends, finished or rejected with a reason
    assert set(df.status) <= {"finished", "rejected"}
    assert (df.reason[df.status == "rejected"].str.len() > 0).all()
    assert (df.reason[df.status == "finished"] == "").all()
    # only requests that can never fit are rejected
    bs = c.block_size
    if isinstance(c, sim.Colocated):
        cap = c.kv_tokens // bs
        never = np.array([_blocks(p + o, bs) > cap for p, o in zip(w.prompt, w.output)])
    else:
        pcap, dcap = c.prefill_kv_tokens // bs, c.decode_kv_tokens // bs
        local = (w.prompt - w.cached <= c.local_prefill) if c.local_prefill else np.zeros(len(w.prompt), bool)
        never = np.array([(not lo and _blocks(p, bs) > pcap) or _blocks(p + o, bs) > dcap
                          for p, o, lo in zip(w.prompt, w.output, local)])
        np.testing.assert_array_equal(df.prefill_site[~never], np.where(local, "decode", "prefill")[~never])
        assert (df.transfer_time[local & ~never] == 0).all()
    np.testing.assert_array_equal(df.status == "rejected", never)
    np.testing.assert_array_equal(df.cached, w.cached)
    # tokens conserved and strictly increasing in time; TTFT at least the own standalone prefill
    cm = _prefill_cost(c)
    for i in np.nonzero(~never)[0]:
        t = res.token_times(i)
        assert len(t) == w.output[i] and np.all(np.isfinite(t))
        assert np.all(np.diff(t) > 0)
        P, h = int(w.prompt[i]), int(w.cached[i])
        assert df.ttft[i] >= cm.step([(P - h, h)]).time * (1 - 1e-9)
        assert df.queue_delay[i] >= 0
    # KV link: transfers through one prefill NIC (egress) never overlap, nor through a one-slot
    # decode NIC (ingress): landings are at least one transfer's wire time apart
    if isinstance(c, sim.Disaggregated):
        xfer = df[(df.status == "finished") & (df.prefill_site == "prefill") & (df.transfer_time > 0)]
        land = xfer.arrival + xfer.ttft                  # token 1 arrives with the KV (first_token="decode")
        rate = min(c.parallel_links, c.ingress_lanes) * c.link.bandwidth
        wire = xfer.prompt * c.prefill_cost.model.kv_bytes_per_token(c.prefill_cost.kv_dtype) / rate
        one_slot = c.ingress_lanes < 2 * c.parallel_links     # a decode NIC takes one transfer at a time
        shared = [xfer.instance] + ([np.zeros(len(xfer), int)] if c.n_decode == 1 and one_slot else [])
        for key in shared:                               # per prefill NIC; and the one decode NIC
            for _, g in land.groupby(np.asarray(key)):
                order = g.sort_values().index
                gaps = np.diff(land[order].to_numpy())
                assert (gaps >= wire[order].to_numpy()[1:] * (1 - 1e-9)).all()
        assert (xfer.transfer_time >= wire / c.prefill_cost.model.n_layers * (1 - 1e-9)).all()
    # KV memory never above capacity
    tl = res.timeline
    assert (tl.kv_tokens_used <= tl.kv_capacity).all()
    assert (tl.end > tl.start).all() and (tl.steps >= 1).all()
    # deterministic
    again = sim.simulate(c, w)
    pd.testing.assert_frame_equal(df, again.requests)
    pd.testing.assert_frame_equal(tl, again.timeline)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_path_equals_step_by_step(case):
    """Decode stretches give the same token times as simulating every step on its own."""
    c, w = case
    fast = sim.simulate(c, w)
    slow = sim.simulate(dataclasses.replace(c, max_stretch=1), w)
    a, b = fast.requests, slow.requests
    pd.testing.assert_series_equal(a.status, b.status)
    pd.testing.assert_series_equal(a.preemptions, b.preemptions)
    np.testing.assert_allclose(fast._q.token_time, slow._q.token_time, rtol=1e-9)
    assert (slow.timeline.steps == 1).all()
    assert fast.timeline.steps.sum() == len(slow.timeline)
