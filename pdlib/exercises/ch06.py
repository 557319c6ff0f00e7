"""Checkers for chapter 06, "A tiny real engine". Expected values come from the engine itself
(torch is imported inside each checker, so loading the exercises stays torch-free)."""
from __future__ import annotations

from functools import lru_cache

from . import Expected, exercise


@exercise("ch06.blocks_at_end", "A request with a 100-token prompt generates 28 tokens in the engine "
          "(KV blocks of 16 tokens). How many KV blocks does it hold when its last token comes out? "
          "(The last generated token is never fed back, so its KV is never written.)")
def blocks_at_end() -> Expected:
    from .. import engine
    m = engine.load(engine.tiny_spec(n_layers=1, hidden=32, n_heads=2, n_kv_heads=1, ffn=64, vocab=50))
    r = engine.Runner(m, n_blocks=16, block_size=16)
    tok = int(r.step([("r", [1] * 100)]).argmax())
    for _ in range(27):                                     # tokens 2..28 each need one decode step
        tok = int(r.step([("r", [tok])]).argmax())
    return Expected(len(r.cache.tables["r"]), rel=0, unit="blocks",
                    hint="KV written = prompt + generated − 1 tokens; blocks = ceil(tokens / 16).")


@lru_cache(maxsize=None)
def _first_tokens() -> tuple[int, ...]:
    import torch

    from .. import engine
    m = engine.load("tiny", dtype=torch.float64, seed=0)
    return tuple(engine.generate(m, [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], 3, chunk_size=3)[0])


@exercise("ch06.third_token", "Load the chapter's model with engine.load('tiny', dtype=torch.float64, "
          "seed=0) and generate 3 tokens greedily after the prompt 1, 2, …, 10 with chunk_size=3. "
          "Which token id comes third?")
def third_token() -> Expected:
    return Expected(_first_tokens()[2], rel=0, unit="token id",
                    hint="engine.generate(m, [list(range(1, 11))], 3, chunk_size=3)[0][2]; the chunk "
                         "size does not change the tokens, only the steps.")
