"""Simulator tests: hand-computed timings, queueing theory, policy sanity, clusters, bad input."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import pdlib
from pdlib import sim
from pdlib.models import attention_pairs, attention_pairs_scalar
from pdlib.sim import pricing
from pdlib.sim.pricing import StepPricer

MODEL, GPU = "Llama-2-7B", "A100-80GB"
CM = pdlib.CostModel(MODEL, GPU)


def wl(arrival, prompt, output):
    """A workload as the simulator reads it: sorted arrival seconds, prompt and output tokens."""
    n = len(arrival)
    return SimpleNamespace(arrival=np.asarray(arrival, float),
                           prompt=np.broadcast_to(np.asarray(prompt), n).astype(np.int64),
                           output=np.broadcast_to(np.asarray(output), n).astype(np.int64))


def poisson(rate, n, prompt, output, seed=0):
    rng = np.random.default_rng(seed)
    return wl(np.cumsum(rng.exponential(1 / rate, n)), prompt, output)


# ------------------------------------------------------------------ hand-computed cases
def test_single_request_continuous_matches_cost_model():
    P, O = 512, 4
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU), wl([0.0], P, O))
    t = [CM.prefill(P).time]
    for L in (P, P + 1, P + 2):                      # decode step j reads P + j − 1 cached tokens
        t.append(t[-1] + CM.decode(1, L).time)
    np.testing.assert_allclose(res.token_times(0), t, rtol=1e-9)
    row = res.requests.iloc[0]
    assert row.queue_delay == 0 and row.status == "finished" and row.reason == ""
    assert row.ttft == pytest.approx(CM.prefill(P).time, rel=1e-9)
    assert row.e2e == pytest.approx(t[-1], rel=1e-9)
    assert row.tpot == pytest.approx((t[-1] - t[0]) / 3, rel=1e-9)
    assert row.max_tbt == pytest.approx(CM.decode(1, P + 2).time, rel=1e-9)


def test_two_simultaneous_requests_share_steps():
    P, O = 300, 3
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU), wl([0.0, 0.0], P, O))
    t1 = CM.step([(P, 0), (P, 0)]).time
    t2 = t1 + CM.step([(1, P), (1, P)]).time
    t3 = t2 + CM.step([(1, P + 1), (1, P + 1)]).time
    for i in (0, 1):
        np.testing.assert_allclose(res.token_times(i), [t1, t2, t3], rtol=1e-9)


def test_static_batch_waits_for_whole_batch_but_continuous_does_not():
    w = wl([0.0, 0.001], 256, 5)
    stat = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, scheduler="static"), w).requests
    cont = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, scheduler="continuous"), w).requests
    end0 = stat.e2e[0]                                # request 0 arrived at 0
    assert stat.queue_delay[1] == pytest.approx(end0 - 0.001, rel=1e-9)
    assert cont.queue_delay[1] == pytest.approx(CM.prefill(256).time - 0.001, rel=1e-9)


def test_chunked_prefill_splits_prompt_and_prices_logits_once():
    P = 1000                                          # chunks of 512 then 488 tokens
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked", chunk_size=512),
                       wl([0.0], P, 1))
    first = CM.cost(1, 512, 0, attention_pairs(512, 0), logits=0).time
    second = CM.cost(1, 488, 512, attention_pairs(488, 512), logits=1).time
    assert res.requests.ttft[0] == pytest.approx(first + second, rel=1e-9)
    assert list(res.timeline.n_prefill_tokens) == [512, 488]


@pytest.mark.parametrize("context_seconds", [0.0, 2e-8])
def test_pricer_matches_cost_model(context_seconds):
    pr = StepPricer(pdlib.CostModel("Llama-3.1-8B", "H100-SXM", tp=2, overhead=1e-3,
                                    context_seconds=context_seconds))
    rng = np.random.default_rng(1)
    for _ in range(20):
        n, T, L, g = int(rng.integers(1, 64)), int(rng.integers(64, 4096)), int(rng.integers(0, 10**6)), 1
        pairs = float(rng.integers(0, 10**7))
        want = pr.cm.cost(n, T, L, pairs, g)
        t, bound = pr.step(n, T, L, pairs, g)
        assert t == pytest.approx(float(want.time), rel=1e-9) and bound == want.bound
    ctx = np.array([1000.0, 5000.0, 20000.0])
    times, _ = pr.decode_steps(4, ctx, 4 * ctx)
    assert times == pytest.approx([float(pr.cm.cost(4, 4, L, 4 * L, 4).time) for L in ctx], rel=1e-9)


def test_context_seconds_adds_its_cost_to_every_simulated_decode_step():
    # one request, 1,000-token prompt, 11 tokens: decode steps see 1,000 … 1,009 cached tokens,
    # so with 1 µs per cached token TPOT grows by the mean context, 1,004.5 µs
    wl = pdlib.workload.Workload(np.zeros(1), np.array([1000]), np.array([11]), name="one")
    tpot = {cs: pdlib.simulate(sim.colocated(model="Llama-3.1-8B", gpu="H100-SXM",
                                             cost_kwargs={"context_seconds": cs}), wl).requests.tpot[0]
            for cs in (0.0, 1e-6)}
    assert tpot[1e-6] - tpot[0.0] == pytest.approx(1004.5e-6, rel=1e-6)


def test_attention_pairs_scalar_equals_numpy_version_bit_for_bit():
    w = 8
    assert attention_pairs_scalar(3, 2, w) == 3 + 4 + 5                 # c + n ≤ w: inside
    assert attention_pairs_scalar(3, 6, w) == 7 + 8 + 8                 # straddles the window
    assert attention_pairs_scalar(3, 8, w) == attention_pairs_scalar(3, 50, w) == 3 * 8   # c ≥ w
    assert attention_pairs_scalar(2, 7, w) == 8 + 8                     # c + 1 = w: edge
    assert attention_pairs_scalar(4, 1000) == 4 * 1000 + 10             # no window
    grid = [0, 1, 2, 7, 8, 9, 15, 16, 17, 100, 4095, 4096, 4097, 10_000]
    for window in (None, 1, 8, 16, 4096):
        for n in grid[1:]:
            for c in grid:
                want = float(attention_pairs(n, c, window))
                got = attention_pairs_scalar(n, c, window)
                assert got == want, (n, c, window, got, want)


def test_windowed_chunked_prefill_prices_each_chunk_inside_the_window():
    # Mistral-7B: 4,096-token window; chunks (3000, 0) inside, (2000, 3000) straddles it
    cm = pdlib.CostModel("Mistral-7B-v0.1", GPU)
    res = sim.simulate(sim.colocated(model="Mistral-7B-v0.1", gpu=GPU, scheduler="chunked",
                                     chunk_size=3000), wl([0.0], 5000, 1))
    w = cm.model.sliding_window
    first = cm.cost(1, 3000, 0, attention_pairs(3000, 0, w), logits=0).time
    second = cm.cost(1, 2000, 3000, attention_pairs(2000, 3000, w), logits=1).time
    assert attention_pairs(2000, 3000, w) < attention_pairs(2000, 3000)   # the window matters
    assert res.requests.ttft[0] == pytest.approx(first + second, rel=1e-9)


def test_pricers_of_equal_cost_models_share_coefficients_and_unequal_never_do():
    a, b = pdlib.CostModel(MODEL, GPU), pdlib.CostModel(MODEL, GPU)
    assert a is not b and a == b
    assert StepPricer(a)._coef is StepPricer(b)._coef
    assert StepPricer(a, share=False)._coef is not StepPricer(a)._coef
    others = [pdlib.CostModel(MODEL, GPU, overhead=1e-3), pdlib.CostModel(MODEL, "H100-SXM"),
              pdlib.CostModel(MODEL, GPU, tp=2), pdlib.CostModel("Llama-2-13B", GPU),
              pdlib.CostModel(MODEL, GPU, kv_dtype="fp8"), pdlib.CostModel(MODEL, GPU, flops_efficiency=0.5)]
    tables = {id(StepPricer(cm)._coef) for cm in [a] + others}
    assert len(tables) == 1 + len(others)
    key = (4, 700, 2)                       # 4 items, 700 new tokens, 2 rows of logits
    for cm in [a] + others:
        shared = StepPricer(cm).coefficients(*key)          # filled by or read from the shared table
        assert shared == StepPricer(cm, share=False).coefficients(*key)   # computed afresh
    coefs = [StepPricer(cm).coefficients(*key) for cm in [a] + others]
    assert len(set(coefs)) == len(coefs)    # every cost model has its own numbers


def test_shared_coefficients_give_bit_identical_simulations():
    w = poisson(rate=3.0, n=150, prompt=600, output=40, seed=3)
    w.prompt = np.random.default_rng(3).integers(50, 1500, len(w.arrival))   # many distinct steps

    def run(**cost_kwargs):
        return sim.simulate(sim.colocated(model=MODEL, gpu=GPU, scheduler="chunked", chunk_size=256,
                                          cost_kwargs=cost_kwargs or None), w)

    pricing.clear_shared_tables()
    fresh = run()
    other = run(overhead=2e-3)              # a different cost model in between must not leak
    warm = run()                            # every coefficient now comes from the shared table
    pricing.clear_shared_tables()
    other_fresh = run(overhead=2e-3)
    pd.testing.assert_frame_equal(warm.requests, fresh.requests, check_exact=True)
    pd.testing.assert_frame_equal(other.requests, other_fresh.requests, check_exact=True)
    np.testing.assert_array_equal(warm.tbt, fresh.tbt)
    assert other.requests.ttft.mean() > fresh.requests.ttft.mean() + 2e-3   # ≥ 1 step of overhead


def test_rejects_what_never_fits_and_serves_the_rest():
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, kv_tokens=1024),
                       wl([0.0, 0.0, 0.1], [100, 1000, 100], [10, 100, 10]))
    df = res.requests
    assert list(df.status) == ["finished", "rejected", "finished"]
    assert "1100" in df.reason[1] and "1024" in df.reason[1]
    assert np.isnan(df.ttft[1])
    assert res.slo_attainment(ttft=10.0) == pytest.approx(2 / 3)


def test_preemption_recomputes_and_finishes_everything():
    # both 150-token prompts fit (2 × 10 blocks of 25), but growing to 250 tokens each does not
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, kv_tokens=400, block_size=16),
                       wl([0.0, 0.0], 150, 100))
    df = res.requests
    assert (df.status == "finished").all()
    assert df.preemptions[1] >= 1 and df.preemptions[0] == 0
    assert len(res.token_times(1)) == 100
    assert (res.timeline.n_prefill_tokens > 150).any()           # the re-prefill: prompt + tokens so far
    assert (res.timeline.kv_tokens_used <= 400).all()
    assert res.summary()["preemptions"] == df.preemptions.sum()


# ------------------------------------------------------------------ queueing theory
@pytest.mark.parametrize("rho,n", [(0.3, 100_000), (0.5, 100_000), (0.8, 400_000)])
def test_md1_mean_wait_pollaczek_khinchine(rho, n):
    """One request at a time, fixed service S (a 256-token prefill, one output token), Poisson
    arrivals: M/D/1, mean wait Wq = ρS / (2(1 − ρ)). The run length at ρ = 0.8 is 400k because
    waits are strongly correlated there (100k runs scatter by ±4 %)."""
    S = CM.prefill(256).time
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU, max_batch=1), poisson(rho / S, n, 256, 1))
    wq = rho * S / (2 * (1 - rho))
    assert res.requests.queue_delay.mean() == pytest.approx(wq, rel=0.03)


# ------------------------------------------------------------------ policy sanity
def _mixed_long(n=300, rate=1.5, seed=3):
    rng = np.random.default_rng(seed)
    return wl(np.cumsum(rng.exponential(1 / rate, n)), rng.integers(1000, 4000, n), rng.integers(50, 300, n))


def test_chunked_lowers_p99_tbt_versus_continuous():
    w = _mixed_long()
    kw = dict(model="Llama-3.1-8B", gpu=GPU)
    cont = sim.simulate(sim.colocated(scheduler="continuous", **kw), w).summary()
    chunk = sim.simulate(sim.colocated(scheduler="chunked", chunk_size=512, **kw), w).summary()
    assert chunk["tbt_p99"] < 0.6 * cont["tbt_p99"]
    assert chunk["finished"] == cont["finished"] == 300


def test_disaggregated_decode_has_no_prefill_spikes():
    w = _mixed_long()
    res = sim.simulate(sim.disaggregated(model="Llama-3.1-8B", prefill_gpu=GPU, decode_gpu=GPU,
                                         link="IB-NDR-400G"), w)
    tl = res.timeline
    dec = tl[tl.role == "decode"]
    assert (dec.n_prefill_tokens == 0).all() and (tl[tl.role == "prefill"].n_decode == 0).all()
    assert (res.requests.status == "finished").all()
    # gaps from token 2 on are decode steps: at most one decode step of a full batch
    cm8 = pdlib.CostModel("Llama-3.1-8B", GPU)
    worst_step = cm8.decode(int(dec.batch.max()), 4300).time
    later = max(np.diff(res.token_times(i))[1:].max() for i in range(len(w.arrival)))
    assert later <= worst_step
    colo = sim.simulate(sim.colocated(model="Llama-3.1-8B", gpu=GPU), w).summary()
    assert colo["tbt_p99"] > 2 * later


def test_isolated_transfer_matches_kv_transfer_time():
    P = 2048
    for mode in ("whole", "layerwise"):
        c = sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE", transfer=mode)
        df = sim.simulate(c, wl([0.0], P, 3)).requests
        want = pdlib.kv_transfer_time(MODEL, P, "100GbE", mode=mode, prefill_time=CM.prefill(P).time)
        assert df.transfer_time[0] == pytest.approx(want, rel=1e-9)
        # default: token 1 reaches the client with the KV; DistServe's convention: at prefill end
        assert df.ttft[0] == pytest.approx(CM.prefill(P).time + want, rel=1e-9)
        c = sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE",
                              transfer=mode, first_token="prefill")
        assert sim.simulate(c, wl([0.0], P, 3)).requests.ttft[0] == pytest.approx(CM.prefill(P).time, rel=1e-9)


def test_default_transfer_is_whole_after_the_prefill():
    # vLLM's NixlConnector (and llm-d, Dynamo's vLLM path) pulls the KV after the prefill ends:
    # the default; Mooncake's layer-by-layer streaming is the option
    c = sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE")
    assert c.transfer == "whole"
    assert sim.Disaggregated(CM, CM, pdlib.hardware.link("100GbE")).transfer == "whole"
    P = 2048
    df = sim.simulate(c, wl([0.0], P, 3)).requests
    whole = pdlib.kv_transfer_time(MODEL, P, "100GbE", mode="whole")
    layer = pdlib.kv_transfer_time(MODEL, P, "100GbE", mode="layerwise", prefill_time=CM.prefill(P).time)
    assert df.transfer_time[0] == pytest.approx(whole, rel=1e-9)
    assert layer < 0.5 * whole                    # the two modes differ: the test can tell them apart
    assert df.ttft[0] == pytest.approx(CM.prefill(P).time + whole, rel=1e-9)


def test_two_prefill_instances_share_one_decode_nic():
    """2P1D, one lane everywhere: two prompts prefilled side by side at once both pull into the
    one decode NIC, so the second transfer waits for the first: wire + lat and 2·wire + lat.
    With a decode NIC of two lanes (two ingress slots) both take wire + lat."""
    P, ln = 2048, pdlib.hardware.link("100GbE")
    wire = P * CM.model.kv_bytes_per_token() / ln.bandwidth
    pre = CM.prefill(P).time
    w = wl([0.0, 0.0], P, 3)
    kw = dict(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE", n_prefill=2, n_decode=1)
    df = sim.simulate(sim.disaggregated(**kw), w).requests
    assert list(df.instance) == [0, 1]                       # one prompt on each prefill instance
    assert sorted(df.transfer_time) == pytest.approx([wire + ln.latency, 2 * wire + ln.latency], rel=1e-9)
    assert sorted(df.ttft) == pytest.approx([pre + wire + ln.latency, pre + 2 * wire + ln.latency], rel=1e-9)
    wide = sim.simulate(sim.disaggregated(**kw, decode_links=2), w).requests
    assert list(wide.transfer_time) == pytest.approx([wire + ln.latency] * 2, rel=1e-9)
    # a receiver narrower than its sender sets the rate: 2 lanes out, 1 in -> one lane's speed
    one = dict(kw, n_prefill=1)
    fast = sim.simulate(sim.disaggregated(**one, parallel_links=2), wl([0.0], P, 3)).requests
    slow = sim.simulate(sim.disaggregated(**one, parallel_links=2, decode_links=1), wl([0.0], P, 3)).requests
    assert fast.transfer_time[0] == pytest.approx(wire / 2 + ln.latency, rel=1e-9)
    assert slow.transfer_time[0] == pytest.approx(wire + ln.latency, rel=1e-9)
    with pytest.raises(ValueError, match="decode_links"):
        sim.disaggregated(**kw, decode_links=0)


def test_kv_transfer_bandwidth_is_small_beside_hbm():
    # the module docstring's reason for not charging transfers to HBM: a 400G NIC is ~1.5% of an
    # H100's HBM bandwidth, under 3% of an A100's, and a 64-token answer reads its KV 63 times
    ndr = pdlib.hardware.link("IB-NDR-400G").bandwidth
    assert ndr / pdlib.hardware.gpu("H100-SXM").mem_bw == pytest.approx(0.015, abs=5e-4)
    assert ndr / pdlib.hardware.gpu("A100-80GB").mem_bw < 0.03
    assert 1 / (64 - 1) == pytest.approx(0.016, abs=5e-4)


def test_slower_link_raises_transfer_and_latency():
    w = poisson(3.0, 200, 1024, 32)
    out = {}
    for ln in ("IB-NDR-400G", "100GbE"):
        c = sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link=ln, transfer="whole")
        out[ln] = sim.simulate(c, w).requests
    assert out["100GbE"].transfer_time.mean() > 3 * out["IB-NDR-400G"].transfer_time.mean()
    assert out["100GbE"].e2e.mean() > out["IB-NDR-400G"].e2e.mean()
    assert out["100GbE"].ttft.mean() > out["IB-NDR-400G"].ttft.mean()
    with pytest.raises(ValueError, match="first_token"):
        sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE", first_token="x")


def test_zero_bandwidth_link_is_rejected():
    bad = SimpleNamespace(name="broken", bandwidth=0.0, latency=1e-6)
    with pytest.raises(ValueError, match="bandwidth"):
        sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link=bad)


# ------------------------------------------------------------------ clusters, goodput, errors
def test_round_robin_and_gpu_count():
    c = sim.colocated(model=MODEL, gpu=GPU, instances=3, router="round_robin")
    assert c.n_gpus == 3
    df = sim.simulate(c, poisson(2.0, 9, 128, 4)).requests
    assert list(df.instance) == [0, 1, 2] * 3
    d = sim.disaggregated(model="Llama-3.1-70B", prefill_gpu="H100-SXM", decode_gpu="H100-SXM",
                          link="IB-NDR-400G", n_prefill=2, n_decode=1, prefill_tp=4, decode_tp=8)
    assert d.n_gpus == 16


def test_least_loaded_balances():
    c = sim.colocated(model=MODEL, gpu=GPU, instances=2, router="least_loaded")
    df = sim.simulate(c, wl(np.zeros(10), 128, 50)).requests
    assert sorted(np.bincount(df.instance)) == [5, 5]


def test_goodput_bisection_brackets_the_target():
    make = lambda: sim.colocated(model=MODEL, gpu=GPU, scheduler="continuous")
    fn = lambda rate: poisson(rate, 300, 512, 64, seed=2)
    slo = dict(ttft=0.2, tpot=0.03)
    g = sim.goodput(make, fn, slo, target=0.9, lo=0.5, hi=64.0, tol=0.02)
    assert 0.5 < g.rate < 64 and g.attainment >= 0.9 and g.per_gpu == g.rate
    assert sim.simulate(make(), fn(g.rate * 1.05)).slo_attainment(**slo) < 0.9


def test_max_time_reports_unfinished_as_rejected():
    res = sim.simulate(sim.colocated(model=MODEL, gpu=GPU), wl([0.0, 0.0], 512, 1000), max_time=0.5)
    df = res.requests
    assert (df.status == "rejected").all() and df.reason.str.contains("unfinished").all()


def test_bad_inputs():
    with pytest.raises(KeyError, match="continuous"):
        sim.colocated(model=MODEL, gpu=GPU, scheduler="fifo")
    with pytest.raises(KeyError, match="least_loaded"):
        sim.colocated(model=MODEL, gpu=GPU, router="nearest")
    with pytest.raises(ValueError, match="max_batch"):
        sim.colocated(model=MODEL, gpu=GPU, max_batch=0)
    with pytest.raises(ValueError, match="transfer"):
        sim.disaggregated(model=MODEL, prefill_gpu=GPU, decode_gpu=GPU, link="100GbE", transfer="teleport")
    with pytest.raises(ValueError, match="output"):
        sim.simulate(sim.colocated(model=MODEL, gpu=GPU), wl([0.0], 10, 0))
