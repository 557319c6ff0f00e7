"""What a simulation returns: per-request metrics, token times, step timelines, SLO attainment.

Definitions (seconds; for request r with output O tokens at times t_1 < … < t_O):

* ``queue_delay`` = start of its first step − arrival;
* ``ttft`` = t_1 − arrival;  ``e2e`` = t_O − arrival;
* ``tpot`` = (e2e − ttft) / (O − 1)  (NaN when O = 1);
* token gaps (TBT) = t_{i+1} − t_i; ``max_tbt`` and ``p99_tbt`` per request (NaN when O = 1).

Rejected requests have NaN metrics, ``status="rejected"`` and a non-empty ``reason``; SLO
attainment counts them as misses.

Where the prefill ran: ``cached`` = prefix-cache hit tokens (not computed); ``prefill_site`` = role
of the instance chosen for the request's first prefill: "both" (colocated), "prefill" (the
disaggregated prefill pool) or "decode" (conditional disaggregation prefilled it on its decode
instance, ``transfer_time`` 0); "" for a request rejected on arrival. A re-prefill after
preemption always runs on the instance serving the request and does not change it. ``instance``
is the instance the request was routed to on arrival (disaggregated: its prefill instance, or its
decode instance when prefilled there).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .instance import TIMELINE_COLUMNS
from .request_state import RequestTable


def _segment_percentile(values: np.ndarray, seg: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per-segment percentile q (linear interpolation, like ``np.percentile``) of ``values``
    grouped by ``seg`` (non-decreasing segment ids, every segment non-empty)."""
    order = np.lexsort((values, seg))
    v = values[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = q / 100 * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = pos - lo
    return v[starts + lo] * (1 - frac) + v[starts + hi] * frac


class Result:
    """Outcome of :func:`pdlib.sim.simulate`.

    ``requests``: one row per request (see module docstring). ``token_times(i)``: that request's
    token times. ``timeline``: one row per engine step, or per decode *stretch* of ``steps``
    consecutive decode-only steps with the same batch (start = first step's start, end = last
    step's end; ``kv_tokens_used`` = blocks held at the stretch's end × block size, its peak).
    """

    def __init__(self, reqs: RequestTable, timeline_rows: list[tuple], cluster, end_time: float):
        self._q = reqs
        self._rows = timeline_rows
        self.cluster = cluster
        self.end_time = end_time

    def token_times(self, i: int) -> np.ndarray:
        q = self._q
        return q.token_time[q.off[i]:q.off[i] + q.gen[i]].copy()

    @cached_property
    def _gaps(self):
        """(ids, counts, gaps, segment of each gap) over finished requests with ≥ 2 tokens."""
        q = self._q
        out = np.asarray(q.output, dtype=np.int64)
        ids = np.nonzero(self._finished & (out > 1))[0]
        tt = q.token_time[_ranges(q.off[ids], out[ids])]
        seg = np.repeat(np.arange(len(ids)), out[ids])
        same = seg[1:] == seg[:-1]
        return ids, out[ids] - 1, np.diff(tt)[same], seg[1:][same]

    @property
    def tbt(self) -> np.ndarray:
        """All token gaps (seconds) of finished requests, request by request."""
        return self._gaps[2]

    @cached_property
    def _finished(self) -> np.ndarray:
        q = self._q
        return np.asarray(q.gen, dtype=np.int64) == np.asarray(q.output, dtype=np.int64)

    @cached_property
    def requests(self) -> pd.DataFrame:
        q = self._q
        out = np.asarray(q.output, dtype=np.int64)
        done = self._finished
        first = q.token_time[q.off[:-1]] if q.n else np.zeros(0)
        last_idx = q.off[1:] - 1
        last = q.token_time[last_idx] if q.n else np.zeros(0)
        ttft = np.where(done, first - q.arrival, np.nan)
        e2e = np.where(done, last - q.arrival, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(out > 1, (e2e - ttft) / (out - 1), np.nan)
        max_tbt = np.full(q.n, np.nan)
        p99_tbt = np.full(q.n, np.nan)
        ids, counts, gaps, gseg = self._gaps
        if len(ids):
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            max_tbt[ids] = np.maximum.reduceat(gaps, starts)
            p99_tbt[ids] = _segment_percentile(gaps, gseg, counts, 99)
        status = np.where(done, "finished", "rejected")
        reason = np.array(q.reason, dtype=object)
        unfinished = ~done & (reason == "")
        reason[unfinished] = f"unfinished when the simulation stopped at t={self.end_time:.6g} s"
        return pd.DataFrame({
            "id": np.arange(q.n), "arrival": q.arrival, "prompt": np.asarray(q.prompt, dtype=np.int64),
            "output": out, "cached": np.asarray(q.cached, dtype=np.int64),
            "instance": np.asarray(q.instance, dtype=np.int64),
            "prefill_site": np.array(q.site, dtype=object),
            "queue_delay": np.asarray(q.first_sched) - q.arrival, "ttft": ttft, "tpot": tpot,
            "max_tbt": max_tbt, "p99_tbt": p99_tbt, "e2e": e2e,
            "transfer_time": np.asarray(q.transfer), "preemptions": np.asarray(q.preemptions, dtype=np.int64),
            "status": status, "reason": reason,
        })

    @cached_property
    def timeline(self) -> pd.DataFrame:
        return pd.DataFrame(sorted(self._rows, key=lambda r: (r[0], r[2])), columns=list(TIMELINE_COLUMNS))

    def summary(self) -> dict:
        """P50/P90/P99 of ttft, tpot, tbt (all gaps) and e2e over finished requests (seconds);
        throughput of finished requests (req/s, output tok/s over first arrival → last token);
        counts of finished, rejected and preemptions.

        ``local_prefill_frac``: fraction of the requests routed on arrival (``prefill_site`` not
        "") whose prefill ran on a decode instance — 0 for pure disaggregation, NaN for a
        colocated cluster (no such choice) or when nothing was routed. ``prefix_hit_frac``:
        prompt tokens served from the prefix cache over all prompt tokens, Σcached / Σprompt
        (all requests)."""
        df = self.requests
        fin = df[df.status == "finished"]
        out: dict = {"requests": len(df), "finished": len(fin), "rejected": int((df.status == "rejected").sum()),
                     "preemptions": int(df.preemptions.sum())}
        series = {"ttft": fin.ttft.to_numpy(), "tpot": fin.tpot.dropna().to_numpy(), "tbt": self.tbt,
                  "e2e": fin.e2e.to_numpy()}
        for name, v in series.items():
            for p in (50, 90, 99):
                out[f"{name}_p{p}"] = float(np.percentile(v, p)) if len(v) else float("nan")
        out["ttft_mean"] = float(fin.ttft.mean()) if len(fin) else float("nan")
        span = float((fin.arrival + fin.e2e).max() - df.arrival.min()) if len(fin) else float("nan")
        out["duration"] = span
        out["throughput_rps"] = len(fin) / span if len(fin) and span > 0 else float("nan")
        out["throughput_tok_s"] = float(fin.output.sum()) / span if len(fin) and span > 0 else float("nan")
        site = df.prefill_site
        routed = int((site != "").sum())
        disagg = hasattr(self.cluster, "decode_cost")
        out["local_prefill_frac"] = (float((site == "decode").sum()) / routed if disagg and routed
                                     else float("nan"))
        total = int(df.prompt.sum())
        out["prefix_hit_frac"] = float(df.cached.sum()) / total if total else float("nan")
        return out

    def slo_attainment(self, ttft: float | None = None, tpot: float | None = None,
                       p99_tbt: float | None = None, max_tbt: float | None = None) -> float:
        """Fraction of ALL requests (rejected and unfinished count as misses) meeting every given
        target (seconds). A NaN tpot/TBT (one-token output) meets its target."""
        df = self.requests
        if len(df) == 0:
            return float("nan")
        ok = (df.status == "finished").to_numpy().copy()
        for col, target in (("ttft", ttft), ("tpot", tpot), ("p99_tbt", p99_tbt), ("max_tbt", max_tbt)):
            if target is not None:
                v = df[col].to_numpy()
                ok &= (v <= target) if col == "ttft" else (np.isnan(v) | (v <= target))
        return float(ok.mean())

    def __repr__(self) -> str:
        s = self.summary()
        return (f"Result({s['finished']}/{s['requests']} finished, {s['rejected']} rejected, "
                f"P90 TTFT {s['ttft_p90'] * 1e3:.1f} ms, P90 TPOT {s['tpot_p90'] * 1e3:.2f} ms)")


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each pair, vectorized."""
    total = int(lengths.sum())
    seg_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - seg_start)


@dataclass(frozen=True)
class Goodput:
    """Highest request rate (req/s) whose SLO attainment ≥ target, overall and per GPU."""
    rate: float
    per_gpu: float
    n_gpus: int
    attainment: float        # attainment measured at ``rate``
    target: float
