"""engine.serve: the colocated engine with every token timed. Same tokens as engine.generate,
times that follow the schedule (one step → one time), TTFT and TPOT by their definitions."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pdlib import engine  # noqa: E402

SPEC = engine.tiny_spec(n_layers=2, hidden=64, n_heads=4, n_kv_heads=2, ffn=128, vocab=211,
                        max_context=512)
PROMPTS = [[(11 * i + 5 * j) % 211 for j in range(n)] for i, n in enumerate((40, 7, 23, 3))]


@pytest.fixture(scope="module")
def m64():
    return engine.load(SPEC, dtype=torch.float64, seed=2)


@pytest.mark.parametrize("chunk_size,token_budget", [(None, None), (8, None), (None, 12), (5, 9)])
def test_tokens_identical_to_generate(m64, chunk_size, token_budget):
    ref = engine.generate(m64, PROMPTS, 6, chunk_size=chunk_size, token_budget=token_budget)
    served = engine.serve(m64, PROMPTS, 6, chunk_size=chunk_size, token_budget=token_budget)
    assert [list(s.tokens) for s in served] == ref
    assert ref == engine.generate(m64, PROMPTS, 6)            # chunking never changes tokens


def test_times_follow_the_schedule_and_define_ttft_tpot(m64):
    served = engine.serve(m64, PROMPTS, 5)
    for s in served:
        assert len(s.token_times) == len(s.tokens) == 5
        assert all(b > a for a, b in zip(s.token_times, s.token_times[1:]))     # one step per token
        assert s.ttft == s.token_times[0] > 0
        gaps = [b - a for a, b in zip(s.token_times, s.token_times[1:])]
        assert s.tpot == pytest.approx(sum(gaps) / 4, rel=1e-12)
    # whole-prompt prefill: every prompt fits, all are prefilled in step 1 and decoded together,
    # so token k of every request comes out of the same step: identical times
    assert len({s.token_times for s in served}) == 1


def test_token_budget_staggers_first_tokens_oldest_first(m64):
    # budget 12 tokens per step, oldest first: request 0 (40 tokens) takes 12 + 12 + 12 in steps
    # 1-3; step 4 holds its last 4, request 1's whole 7 and 1 of request 2's 23: requests 0 and
    # 1 get their first token from the same step, request 2 only after more steps
    served = engine.serve(m64, PROMPTS, 3, token_budget=12)
    ttft = [s.ttft for s in served]
    assert ttft[0] == ttft[1] < ttft[2]
    _, steps = engine.generate(m64, PROMPTS, 3, token_budget=12, return_steps=True)
    assert all(sum(n for n, _ in s.items) <= 12 for s in steps)


def test_chunked_prefill_delays_the_first_token_of_a_long_prompt(m64):
    long = [list(range(1, 201))]
    whole = engine.serve(m64, long, 2)[0]
    chunked = engine.serve(m64, long, 2, chunk_size=4)[0]     # 50 steps before the first token
    assert chunked.tokens == whole.tokens
    assert chunked.ttft > whole.ttft


def test_a_request_waiting_for_blocks_starts_after_the_first_finishes(m64):
    prompts = [list(range(1, 31)), list(range(40, 70))]
    # 30 + 4 − 1 = 33 tokens → 3 blocks of 16 each: room for one request at a time
    served = engine.serve(m64, prompts, 4, n_blocks=3)
    assert served[1].ttft > served[0].token_times[-1]
    assert [list(s.tokens) for s in served] == engine.generate(m64, prompts, 4)


def test_on_token_hook_sees_every_token_once_in_order(m64):
    seen = []
    runner = engine.Runner(m64, n_blocks=32)
    out = runner.generate(PROMPTS, 4, token_budget=10, on_token=lambda i, t: seen.append((i, t)))
    assert out == engine.generate(m64, PROMPTS, 4)
    assert [[t for j, t in seen if j == i] for i in range(len(PROMPTS))] == out
    with pytest.raises(TypeError, match="on_token"):
        engine.Runner(m64).generate(PROMPTS, 2, on_token=3)


def test_single_token_and_bad_input(m64):
    s = engine.serve(m64, [[1, 2, 3]], 1)[0]
    assert len(s.tokens) == 1 and s.tpot is None and s.ttft > 0
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.serve(m64, PROMPTS, 0)
    with pytest.raises(ValueError, match="at least one prompt"):
        engine.serve(m64, [], 3)
    with pytest.raises(ValueError, match="one time per token"):
        engine.Served((1, 2), (0.1,))
    with pytest.raises(ValueError, match="non-decreasing"):
        engine.Served((1, 2), (0.2, 0.1))
