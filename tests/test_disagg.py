"""The real disaggregated run (CPU processes, gloo): same tokens as colocated, KV bit-exact,
faults end requests with a reason instead of hanging, and no worker process outlives a test."""
import multiprocessing
import time

import psutil
import pytest

torch = pytest.importorskip("torch")

from pdlib import disagg, engine

SPEC = engine.tiny_spec(n_layers=3, hidden=64, n_heads=4, n_kv_heads=2, ffn=128, vocab=300,
                        max_context=256)
PROMPTS = [[(13 * i + 7 * j) % 300 for j in range(n)] for i, n in enumerate((1, 16, 17, 40, 9))]


@pytest.fixture(scope="module")
def model():
    return engine.load(SPEC, dtype=torch.float64, seed=3)


@pytest.fixture(scope="module")
def reference(model):
    return engine.generate(model, PROMPTS, 6)


def _our_children():
    """Live child processes other than multiprocessing's long-lived resource tracker."""
    kids = [p for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    return [p for p in kids if "resource_tracker" not in " ".join(p.cmdline())]


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


def test_layerwise_tokens_identical_to_colocated_and_kv_bit_exact(model, reference):
    res = disagg.run(model, PROMPTS, 6, timeout=20)
    assert [r.status for r in res] == ["finished"] * len(PROMPTS)
    assert [list(r.tokens) for r in res] == reference
    for r, p in zip(res, PROMPTS):
        assert len(r.kv_sent) == SPEC.n_layers and r.kv_received == r.kv_sent
        assert r.kv_bytes == disagg.kv_message_bytes(SPEC, len(p), 16, 8)
        assert 0 < r.prefill_seconds < r.ttft and r.tpot > 0 and len(r.token_times) == 6
        assert r.prefill_window[1] - r.prefill_window[0] == pytest.approx(r.prefill_seconds)


def test_whole_request_over_emulated_link_same_tokens_and_throttled(model, reference):
    bw = 2e6                                             # bytes/s
    res = disagg.run(model, PROMPTS, 6, layerwise=False, link_bandwidth=bw, timeout=20)
    assert [list(r.tokens) for r in res] == reference
    for r in res:
        assert r.kv_received == r.kv_sent
        # the link never beats its bandwidth: bytes / seconds <= bw
        assert r.transfer_seconds >= r.kv_bytes / bw
        # whole-request mode sends only after the prefill: nothing hidden
        assert r.exposed_transfer >= r.transfer_seconds * 0.99


def test_requests_wait_for_blocks_or_are_rejected(model, reference):
    # 4 blocks of 16 tokens: prompt 40 + 5 new tokens needs 3 blocks, so requests must take turns;
    # a 100-token prompt needs 7 blocks and can never fit
    prompts = PROMPTS + [list(range(100))]
    res = disagg.run(model, prompts, 6, n_blocks=4, timeout=20)
    assert [list(r.tokens) for r in res[:-1]] == reference
    assert res[-1].status == "rejected" and "needs 7 KV blocks" in res[-1].reason
    assert res[-1].tokens == ()


def test_killed_decode_worker_fails_requests_quickly(model):
    t0 = time.perf_counter()
    res = disagg.run(model, PROMPTS, 30, timeout=10, faults={"kill_decode_after_tokens": 3})
    assert time.perf_counter() - t0 < 20
    failed = [r for r in res if r.status == "failed"]
    assert failed and all("decode worker died (exit code -9)" in r.reason for r in failed)
    assert all(r.status in ("finished", "failed") for r in res)


def test_stalled_transfer_fails_within_timeout(model):
    t0 = time.perf_counter()
    res = disagg.run(model, PROMPTS, 6, timeout=2, faults={"stall_prefill_after_layers": 1})
    assert time.perf_counter() - t0 < 15
    assert [r.status for r in res] == ["failed"] * len(PROMPTS)
    assert "stalled: 1 of 4 messages (3 layers + first token) arrived" in res[0].reason
    assert all("stall" in r.reason for r in res)


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
    for _ in range(3):
        link.send(torch.zeros(1000, dtype=torch.float64))          # 8000 bytes
    assert time.perf_counter() - t0 >= 3 * (8000 / 1e6 + 1e-3)
    with pytest.raises(ValueError, match="bandwidth"):
        disagg.EmulatedLink(Sink(), bandwidth=0)


def test_bad_arguments_start_nothing(model):
    with pytest.raises(ValueError, match="transport must be"):
        disagg.run(model, PROMPTS, 4, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="unknown faults"):
        disagg.run(model, PROMPTS, 4, faults={"explode": 1})
    with pytest.raises(ValueError, match="max_new_tokens"):
        disagg.run(model, PROMPTS, 0)
