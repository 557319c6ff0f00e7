"""Published step times measured on real GPUs, as small tables the book can cite (no GPU needed).

Each table is a pandas DataFrame built from numbers copied out of a public repository, with the
file, the rows and the machine named in :data:`SOURCES`. Readers do not need that repository:
pdlib carries the rows it uses. Units are the ones stated per table (seconds or milliseconds, as
in the original files), and column names say them.

Sarathi-Serve (Agrawal et al., OSDI 2024) ran every measurement below on Yi-34B with tensor
parallelism 2 over two **A100 80GB PCIe** cards joined by an NVLink bridge (Azure NC96ads A100 v4),
catalogued here as ``pdlib.hardware.gpu("A100-PCIe-80GB")`` and ``pdlib.models.get("Yi-34B")``.
The numbers come from the repository github.com/microsoft/sarathi-serve at commit 02d2567,
directory ``osdi-experiments/`` (Apache-2.0 licence).
"""
from __future__ import annotations

import pandas as pd

__all__ = ["SOURCES", "sarathi_mixed_batch", "sarathi_chunking_overhead", "sarathi_prefill",
           "sarathi_decode"]

_REPO = "github.com/microsoft/sarathi-serve @ 02d2567"
_MACHINE = "Yi-34B, tp 2 on 2 × A100 80GB PCIe (NVLink-bridged pair), Azure NC96ads A100 v4"

#: Where each table comes from: repository, file, rows, machine.
SOURCES: dict[str, str] = {
    "sarathi_mixed_batch": f"{_REPO}, osdi-experiments/table-2/results.csv, all 3 rows; {_MACHINE}",
    "sarathi_chunking_overhead": (f"{_REPO}, osdi-experiments/figure-9/chunking-overhead.csv, all "
                                  f"16 rows (the repository's 'figure 9' experiment); {_MACHINE}"),
    "sarathi_prefill": f"{_REPO}, osdi-experiments/figure-2/ prefill rows, 128–16,384 tokens; {_MACHINE}",
    "sarathi_decode": f"{_REPO}, osdi-experiments/figure-2/ decode rows, batch 1–128; {_MACHINE}",
}

# osdi-experiments/table-2/results.csv: prefill tokens, decode tokens, requests, step time (ms),
# time in linear layers (ms), time in attention (ms)
_MIXED = [
    (0, 4, 4, 68.12209542840715, 25.50041586626321, 2.9952000081539154),
    (1021, 3, 4, 217.6498775370419, 158.9964799284935, 3.9936000108718868),
    (1024, 0, 1, 217.2359591349959, 160.9267194569111, 13.67039993405342),
]

# osdi-experiments/figure-9/chunking-overhead.csv: prompt tokens, chunk size (16,384 = unchunked),
# prefill time (ms), relative to the unchunked prefill
_CHUNKING = [
    (2047, 512, 435.6786895543335, 1.152179444326152),
    (2047, 1024, 444.16782539337873, 1.174629493062402),
    (2047, 2048, 377.7101621031761, 0.9988780611086228),
    (2047, 16384, 378.13440579921007, 1.0),
    (4095, 512, 921.9583958387371, 1.1889427456953752),
    (4095, 1024, 932.2625610977409, 1.2022308317851966),
    (4095, 2048, 793.903593160212, 1.023805328016589),
    (4095, 16384, 775.4438968375325, 1.0),
    (8191, 512, 1958.530533500015, 1.1165034734755017),
    (8191, 1024, 1946.2371833622456, 1.109495378429395),
    (8191, 2048, 1643.3718785643578, 0.9368403398593488),
    (8191, 16384, 1754.1642995551229, 1.0),
    (16383, 512, 4512.830304540692, 0.9951110776273387),
    (16383, 1024, 4357.553739473224, 0.960871494136001),
    (16383, 2048, 3651.589503698051, 0.8052013749379132),
    (16383, 16384, 4535.00157520175, 1.0),
]

# osdi-experiments/figure-2/: one prefill of `tokens` tokens, step time (s)
_PREFILL = [(128, 0.0480940844863653), (256, 0.1213533570989966), (512, 0.1055817436426878),
            (1024, 0.2143006371334195), (2048, 0.3660252727568149), (4096, 0.7576026394963264),
            (8192, 1.863264944404364), (16384, 4.407501052133739)]

# osdi-experiments/figure-2/: a decode step of `batch` requests, step time (s)
_DECODE = [(1, 0.04680326674133536), (2, 0.04750242146352921), (4, 0.04884505489220215),
           (8, 0.06967552363251643), (16, 0.0772536892133454), (32, 0.08789650211110707),
           (64, 0.1278068584700425), (128, 0.18933050256843362)]


def sarathi_mixed_batch() -> pd.DataFrame:
    """Sarathi-Serve's three specimen steps (decode-only batch of 4, a 1,021-token prefill with 3
    decodes, a 1,024-token prefill alone): columns ``prefill_tokens``, ``decode_tokens``,
    ``requests``, ``step_ms``, ``linear_ms``, ``attention_ms``, ``ms_per_token``, and
    ``other_ms`` = step − linear − attention (what is neither: norms, sampling, communication,
    per-step overhead). Source: :data:`SOURCES` ``["sarathi_mixed_batch"]``."""
    df = pd.DataFrame(_MIXED, columns=["prefill_tokens", "decode_tokens", "requests", "step_ms",
                                       "linear_ms", "attention_ms"])
    df["ms_per_token"] = df.step_ms / (df.prefill_tokens + df.decode_tokens)
    df["other_ms"] = df.step_ms - df.linear_ms - df.attention_ms
    return df


def sarathi_chunking_overhead() -> pd.DataFrame:
    """Prefill time of one prompt cut into chunks, against the same prompt unchunked (chunk
    16,384 covers every prompt here): columns ``prompt``, ``chunk`` (None = unchunked),
    ``prefill_ms``, ``relative`` (time ÷ unchunked time) and ``overhead`` (relative − 1).
    Source: :data:`SOURCES` ``["sarathi_chunking_overhead"]``."""
    df = pd.DataFrame(_CHUNKING, columns=["prompt", "chunk", "prefill_ms", "relative"])
    df["chunk"] = df.chunk.where(df.chunk < 16384).astype("Int64")
    df["overhead"] = df.relative - 1
    return df


def sarathi_prefill() -> pd.DataFrame:
    """One prefill of ``tokens`` tokens, ``step_s`` seconds. Source: :data:`SOURCES`
    ``["sarathi_prefill"]``."""
    return pd.DataFrame(_PREFILL, columns=["tokens", "step_s"])


def sarathi_decode() -> pd.DataFrame:
    """A decode step of ``batch`` requests, ``step_s`` seconds. Source: :data:`SOURCES`
    ``["sarathi_decode"]``."""
    return pd.DataFrame(_DECODE, columns=["batch", "step_s"])
