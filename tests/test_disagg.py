"""The real disaggregated run (CPU processes; gloo and shared-memory transports): same tokens as
colocated, KV bit-exact in the decode worker's cache, faults end requests with a reason instead of
hanging, and no worker process outlives a test."""
import multiprocessing
import time

import psutil
import pytest

torch = pytest.importorskip("torch")

from pdlib import disagg, engine

SPEC = engine.tiny_spec(n_layers=3, hidden=64, n_heads=4, n_kv_heads=2, ffn=128, vocab=300,
                        max_context=256)
PROMPTS = [[(13 * i + 7 * j) % 300 for j in range(n)] for i, n in enumerate((1, 16, 17, 40, 9))]
TRANSPORTS = ["gloo", "shared"]


@pytest.fixture(scope="module")
def model():
    return engine.load(SPEC, dtype=torch.float64, seed=3)


@pytest.fixture(scope="module")
def reference(model):
    return engine.generate(model, PROMPTS, 6)


def _our_children():
    """Live descendants other than multiprocessing's long-lived helpers (the resource tracker and
    the fork server the workers are forked from); the fork server's own children — workers —
    do count."""
    me = psutil.Process()
    helpers = {p.pid for p in me.children() if any(h in " ".join(p.cmdline())
                                                   for h in ("resource_tracker", "forkserver"))}
    return [p for p in me.children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and p.pid not in helpers]


@pytest.fixture(autouse=True)
def no_leaked_processes():
    yield
    assert multiprocessing.active_children() == []
    assert _our_children() == []


def test_kv_message_bytes_by_hand():
    # 17 tokens -> 2 blocks of 16 = 32 slots; 3 layers · K and V · 32 · 2 heads · 16 dims · 8 B + 24
    assert disagg.kv_message_bytes(SPEC, 17, 16, 8) == 3 * 2 * 32 * 2 * 16 * 8 + 24 == 49176
    with pytest.raises(ValueError, match="prompt_tokens"):
        disagg.kv_message_bytes(SPEC, 0)


def test_auto_transport_follows_the_hardware():
    assert disagg.pick_transport("auto", n_gpus=0) == ("gloo", ("cpu", "cpu"))
    assert disagg.pick_transport("auto", n_gpus=1) == ("shared", ("cuda:0", "cuda:0"))
    assert disagg.pick_transport("auto", n_gpus=2) == ("nccl", ("cuda:0", "cuda:1"))
    assert disagg.pick_transport("shared", n_gpus=0) == ("shared", ("cpu", "cpu"))
    assert disagg.pick_transport("gloo", n_gpus=1) == ("gloo", ("cpu", "cpu"))
    with pytest.raises(ValueError, match="needs two GPUs"):
        disagg.pick_transport("nccl", n_gpus=1)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_layerwise_tokens_identical_to_colocated_and_kv_bit_exact(model, reference, transport):
    res = disagg.run(model, PROMPTS, 6, timeout=20, transport=transport)
    assert [r.status for r in res] == ["finished"] * len(PROMPTS)
    assert [list(r.tokens) for r in res] == reference
    for r, p in zip(res, PROMPTS):
        # digests: the prefill worker's KV per layer vs what sits in the decode worker's cache
        assert len(r.kv_sent) == SPEC.n_layers and r.kv_received == r.kv_sent
        assert r.kv_bytes == disagg.kv_message_bytes(SPEC, len(p), 16, 8)
        assert len(r.wire) == SPEC.n_layers          # a message per layer, the last with the first token
        assert 0 < r.prefill_seconds < r.ttft and r.tpot > 0 and len(r.token_times) == 6
        assert r.prefill_window[1] - r.prefill_window[0] == pytest.approx(r.prefill_seconds)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_whole_request_over_emulated_link_same_tokens_and_throttled(model, reference, transport):
    bw = 2e6                                             # bytes/s
    res = disagg.run(model, PROMPTS, 6, layerwise=False, link_bandwidth=bw, timeout=20,
                     transport=transport)
    assert [list(r.tokens) for r in res] == reference
    for r in res:
        assert r.kv_received == r.kv_sent and len(r.wire) == 1      # one message, first token included
        # the link never beats its bandwidth: bytes / seconds <= bw
        assert r.transfer_seconds >= r.kv_bytes / bw
        # whole-request mode sends only after the prefill: nothing hidden
        assert r.exposed_transfer >= r.transfer_seconds * 0.99


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_requests_wait_for_blocks_or_are_rejected(model, reference, transport):
    # 4 blocks of 16 tokens: prompt 40 + 5 new tokens needs 3 blocks, so requests must take turns
    # (and reuse each other's blocks: the shared transport writes into them directly); a 100-token
    # prompt needs 7 blocks and can never fit
    prompts = PROMPTS + [list(range(100))]
    res = disagg.run(model, prompts, 6, n_blocks=4, timeout=20, transport=transport)
    assert [list(r.tokens) for r in res[:-1]] == reference
    assert all(r.kv_received == r.kv_sent for r in res[:-1])
    assert res[-1].status == "rejected" and "needs 7 KV blocks" in res[-1].reason
    assert res[-1].tokens == ()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_killed_decode_worker_fails_requests_quickly(model, transport):
    t0 = time.perf_counter()
    res = disagg.run(model, PROMPTS, 30, timeout=10, faults={"kill_decode_after_tokens": 3},
                     transport=transport)
    assert time.perf_counter() - t0 < 20
    failed = [r for r in res if r.status == "failed"]
    assert failed and all("decode worker died (exit code -9)" in r.reason for r in failed)
    assert all(r.status in ("finished", "failed") for r in res)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stalled_transfer_fails_within_timeout(model, transport):
    t0 = time.perf_counter()
    res = disagg.run(model, PROMPTS, 6, timeout=2, faults={"stall_prefill_after_layers": 1},
                     transport=transport)
    assert time.perf_counter() - t0 < 15
    assert [r.status for r in res] == ["failed"] * len(PROMPTS)
    assert "stalled: 1 of 3 messages (3 layers, the last with the first token) arrived" in res[0].reason
    assert all("stall" in r.reason for r in res)


def test_shared_transport_writes_exactly_the_named_blocks_then_signals():
    # in one process: a pool of 2 layers × 4 blocks of 2 tokens × 1 head × 3 dims, 2 trailer slots
    ctx = multiprocessing.get_context("spawn")
    counter, messages = ctx.Value("q", 0), ctx.Queue()
    pool = (torch.zeros(2, 8, 1, 3), torch.zeros(2, 8, 1, 3), torch.zeros(2, 3, dtype=torch.long))
    sender = disagg.SharedTransport(counter, messages, pool, block_size=2)
    receiver = disagg.SharedTransport(counter, messages, pool, block_size=2)
    k, v, _ = pool
    dest = disagg.KVDest(layers=(1,), blocks=(3, 0), meta=True)     # not consecutive: 3 then 0
    pending = receiver.recv_kv(dest, (1, 2, 4, 1, 3), torch.float32, "cpu")
    assert pending.buffer is None and not pending.done()
    msg, kv, trailer = disagg.new_message((1, 2, 4, 1, 3), torch.float32, "cpu", meta=True)
    assert msg.numel() == 1 * 2 * 4 * 1 * 3 * 4 + 24 and trailer.tolist() == [0, 0, 0]
    kv.copy_(torch.arange(24, dtype=torch.float32).view(1, 2, 4, 1, 3))
    trailer.copy_(torch.tensor([7, 4, 99]))
    sender.send_kv(msg, dest)
    assert pending.done() and counter.value == 1 and pending.meta.tolist() == [7, 4, 99]
    assert torch.equal(k[1, 6:8], kv[0, 0, :2]) and torch.equal(k[1, 0:2], kv[0, 0, 2:])
    assert torch.equal(v[1, 6:8], kv[0, 1, :2]) and torch.equal(v[1, 0:2], kv[0, 1, 2:])
    assert k[0].abs().sum() == 0 and k[1, 2:6].abs().sum() == 0      # nothing else touched
    # consecutive blocks take the memcpy-per-layer path
    msg2, kv2, _ = disagg.new_message((2, 2, 2, 1, 3), torch.float32, "cpu", meta=False)
    kv2.fill_(5.0)
    sender.send_kv(msg2, disagg.KVDest(layers=(0, 1), blocks=(1,)))
    assert counter.value == 2 and (k[:, 2:4] == 5).all() and (v[:, 2:4] == 5).all()
    assert k[0, 4:].abs().sum() == 0
    with pytest.raises(ValueError, match="does not fit"):
        sender.send_kv(msg2, dest)
    # plain messages go through the queue
    meta = torch.zeros(3, dtype=torch.long)
    got = receiver.recv(meta)
    sender.send(torch.tensor([4, 5, 6]))
    deadline = time.perf_counter() + 5
    while not got.done() and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert got.done() and meta.tolist() == [4, 5, 6]
    messages.close()
    messages.join_thread()


def test_block_runs_by_hand():
    assert disagg.block_runs([4, 5, 6, 1, 2]) == [(4, 3), (1, 2)]
    assert disagg.block_runs([3, 2, 1]) == [(3, 1), (2, 1), (1, 1)]
    assert disagg.block_runs([0]) == [(0, 1)] and disagg.block_runs([]) == []


@pytest.mark.parametrize("blocks", [(7, 0, 5, 2, 6, 1), (2, 3, 4, 5, 6, 7), (4, 5, 6, 1, 2), (7, 0, 1)])
def test_shared_transport_lands_every_block_whatever_the_order(blocks):
    # scattered (6 runs > MAX_RUNS: one indexed copy), one run, or 2 runs (a copy per run, each
    # from its own offset in the message)
    assert len(disagg.block_runs(blocks)) in (1, 2, 6) and disagg.transport.MAX_RUNS < 6
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    L, bs, K, D = 3, 2, 2, 4
    pool = (torch.zeros(L, 8 * bs, K, D), torch.zeros(L, 8 * bs, K, D), torch.zeros(2, 3, dtype=torch.long))
    sender = disagg.SharedTransport(counter, None, pool, block_size=bs)
    msg, kv, _ = disagg.new_message((2, 2, len(blocks) * bs, K, D), torch.float32, "cpu", meta=False)
    kv.copy_(torch.randn(kv.shape))
    sender.send_kv(msg, disagg.KVDest(layers=(1, 2), blocks=blocks))
    k, v, _ = pool
    for j, b in enumerate(blocks):
        assert torch.equal(k[1:3, b * bs:(b + 1) * bs], kv[:, 0, j * bs:(j + 1) * bs])
        assert torch.equal(v[1:3, b * bs:(b + 1) * bs], kv[:, 1, j * bs:(j + 1) * bs])
    untouched = [b for b in range(8) if b not in blocks]
    assert k[0].abs().sum() == 0 and v[0].abs().sum() == 0
    assert all(k[:, b * bs:(b + 1) * bs].abs().sum() == 0 for b in untouched)
    with pytest.raises(ValueError, match="consecutive"):
        sender.send_kv(msg, disagg.KVDest(layers=(0, 2), blocks=blocks))
    assert counter.value == 1


def test_prefill_layers_matches_reference_forward(model):
    out = list(disagg.prefill_layers(model, PROMPTS[3]))
    assert [li for li, _, _ in out] == [0, 1, 2, None]
    assert out[0][1].shape == (40, SPEC.n_kv_heads, SPEC.head_dim)
    ref = engine.forward_logits(model, PROMPTS[3])[-1]
    assert torch.allclose(out[-1][1], ref, rtol=0, atol=1e-12)


def test_emulated_link_never_exceeds_bandwidth():
    class Sink(disagg.Transport):
        def send(self, tensor):
            pass
    link = disagg.EmulatedLink(Sink(), bandwidth=1e6, latency=1e-3)
    t0 = time.perf_counter()
    for _ in range(2):
        link.send(torch.zeros(1000, dtype=torch.float64))          # 8000 bytes
    link.send_kv(torch.zeros(8000, dtype=torch.uint8), disagg.KVDest((0,), (0,)))
    assert time.perf_counter() - t0 >= 3 * (8000 / 1e6 + 1e-3)
    with pytest.raises(ValueError, match="bandwidth"):
        disagg.EmulatedLink(Sink(), bandwidth=0)


def test_raw_copy_bandwidth_is_a_plausible_memcpy_rate():
    bw = disagg.raw_copy_bandwidth(1 << 20, repeats=2)
    assert 1e8 < bw < 1e12                                           # 0.1 GB/s … 1 TB/s
    with pytest.raises(ValueError, match="nbytes"):
        disagg.raw_copy_bandwidth(4)


def test_bad_arguments_start_nothing(model):
    with pytest.raises(ValueError, match="transport must be"):
        disagg.run(model, PROMPTS, 4, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="unknown faults"):
        disagg.run(model, PROMPTS, 4, faults={"explode": 1})
    with pytest.raises(ValueError, match="max_new_tokens"):
        disagg.run(model, PROMPTS, 0)


def test_context_term_recovered_from_a_decode_sweep():
    # synthetic engine: a calibrated roofline plus 0.5 µs per cached token per step (the extra
    # cost of gathering the context); the sweep over context lengths pins the term down exactly
    import pdlib
    from pdlib import calibrate as cal
    truth = pdlib.CostModel("Llama-2-7B", "A100-80GB", flops_efficiency=0.55, bw_efficiency=0.7,
                            overhead=2e-4)
    shapes = [[(1, 512)] * b for b in (1, 8, 64)] + [[(c, 0)] for c in (64, 512, 4096)] + \
        cal.decode_context_sweep((128, 1024, 4096, 16000))
    c = 5e-7                          # more than the roofline's own 0.37 µs per 512 KiB token
    meas = [(items, truth.step(items).time + c * sum(L for _, L in items)) for items in shapes]
    fit = cal.calibrate_with_context(pdlib.CostModel("Llama-2-7B", "A100-80GB"), meas,
                                     loop_overhead=1e-3)
    assert fit.context_seconds == pytest.approx(c, rel=1e-4)
    assert fit.cost_model.bw_efficiency == pytest.approx(0.7, rel=1e-6)
    assert fit.cost_model.flops_efficiency == pytest.approx(0.55, rel=1e-6)
    assert fit.cost_model.overhead == pytest.approx(2e-4, rel=1e-6)
    # step time = roofline + c·ΣL + loop overhead, by hand for one decode at context 1000
    assert fit.decode_time(1, 1000) == pytest.approx(truth.decode(1, 1000).time + c * 1000 + 1e-3, rel=1e-6)
    # without the context term the plain fit cannot match the long-context decodes
    plain = cal.calibrate(pdlib.CostModel("Llama-2-7B", "A100-80GB"), meas)
    assert max(cal.relative_errors(plain, meas)) > 0.05
    with pytest.raises(ValueError, match="loop_overhead"):
        cal.EngineTimes(truth, loop_overhead=-1.0)


def test_ch07_checkers_accept_the_solutions_and_reject_wrong_answers():
    from pdlib.exercises import check
    # 37 tokens -> 3 blocks of 16 = 48 slots; 2 layers · K and V · 48 · 2 heads · 16 dims · 8 B + 24
    assert check("ch07.wire_bytes", 2 * 2 * 48 * 2 * 16 * 8 + 24).ok
    assert not check("ch07.wire_bytes", 2 * 2 * 37 * 2 * 16 * 8 + 24).ok       # forgot the padding
    assert check("ch07.wire_bytes", None).ok is None
    # exposed = max(wire/l, wire − prefill + prefill/l) + latency = max(0.075, 0.25) + 1e-6
    assert check("ch07.exposed_layerwise", 0.25 + 1e-6).ok
    assert not check("ch07.exposed_layerwise", 0.6).ok                           # the whole wire time
    # knee: the link moving the KV as fast as the prefill makes it, 1,024 · 8,192 B / 0.2 s
    assert check("ch07.knee_bandwidth", 1024 * 8192 / 0.2 / 1e6).ok                 # 41.94 MB/s
    assert not check("ch07.knee_bandwidth", 8 * 1024 * 8192 / 0.2 / 1e6).ok         # bits, not bytes
    assert not check("ch07.knee_bandwidth", 1024 * 8192 / 0.2 / 2 ** 20).ok         # MiB/s, not MB/s
    assert not check("ch07.knee_bandwidth", 1024 * 8192 / 8 / 0.2 / 1e6).ok         # one layer's KV only


def test_raw_send_reference_runs_on_gloo_and_names_what_nccl_needs():
    rate = disagg.raw_bandwidth(1 << 20, repeats=1)
    assert 1e7 < rate < 1e12                              # bytes/s of one 1 MiB loopback send
    with pytest.raises(ValueError, match="backend must be 'gloo' or 'nccl'"):
        disagg.raw_bandwidth(1 << 20, backend="mpi")
    if torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match="needs two GPUs"):
            disagg.raw_bandwidth(1 << 20, backend="nccl")


def test_hidden_fraction_counts_over_the_wire_time():
    # 8 MB on a 20 MB/s link: 0.4 s of wire; 0.05 s left after the prefill → 87.5 % hidden
    assert disagg.hidden_fraction(0.05, 8e6, 20e6) == pytest.approx(0.875)
    assert disagg.hidden_fraction(0.6, 8e6, 20e6) == 0.0             # nothing hidden, never < 0
    with pytest.raises(ValueError, match="must be > 0"):
        disagg.hidden_fraction(0.1, 0, 20e6)
