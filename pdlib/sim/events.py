"""The discrete-event loop shared by every cluster shape.

Events, in time order (ties: deliveries of work before step ends, then insertion order):

* an *arrival* of workload row r (read straight from the sorted arrival array, not the heap);
* a *step end* of an instance (stale ones, whose instance has since been re-planned, are skipped);
* a *transfer end* (disaggregated clusters: a request's KV has landed on its decode instance).

At a step end the instance applies the step's effects (token times, finished requests, freed
blocks), tells the cluster, and asks its scheduler for the next step. New work for a busy
instance in a decode stretch cuts the stretch at the next step boundary (see
:mod:`pdlib.sim.instance`).
"""
from __future__ import annotations

import heapq

from .instance import Instance
from .request_state import RequestTable

DELIVER, STEP = 0, 1          # event priorities at equal times


class Runtime:
    """Event queue and instance wake-ups; subclasses route arrivals and react to finished steps."""

    def __init__(self, reqs: RequestTable, instances: list[Instance]) -> None:
        self.reqs, self.instances = reqs, instances
        self._heap: list = []
        self._seq = 0

    def push(self, t: float, prio: int, kind: str, a: int, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, prio, self._seq, kind, a, b))

    def wake(self, inst: Instance, now: float, force_cut: bool = False) -> None:
        """Let ``inst`` see new work: plan now if idle, else cut its decode stretch (when its
        policy reacts to new work, or when ``force_cut``)."""
        if not inst.busy:
            inst.busy = True
            inst.version += 1
            self.push(now, STEP, "step", inst.idx, inst.version)
        elif force_cut or inst.policy.interruptible:
            t = inst.cut(now)
            if t is not None:
                inst.version += 1
                self.push(t, STEP, "step", inst.idx, inst.version)

    def reject(self, r: int, reason: str) -> None:
        self.reqs.reason[r] = reason

    # hooks --------------------------------------------------------------------------
    def on_arrival(self, r: int, now: float) -> None:
        raise NotImplementedError

    def after_step(self, inst: Instance, finished: list[int], handed: list[int], now: float) -> None:
        pass

    def after_plan(self, inst: Instance, now: float) -> None:
        """Called once ``inst`` has chosen its next step (planning may have freed blocks)."""

    def on_transfer(self, r: int, dst: int, now: float) -> None:
        raise NotImplementedError

    # loop ---------------------------------------------------------------------------
    def run(self, max_time: float | None = None) -> float:
        """Process every event (up to ``max_time`` seconds); returns the last event time."""
        arrival, n, heap = self.reqs.arrival, self.reqs.n, self._heap
        limit = float("inf") if max_time is None else max_time
        ai, now = 0, 0.0
        while True:
            next_arrival = arrival[ai] if ai < n else float("inf")
            if heap and (heap[0][0] < next_arrival or (heap[0][0] == next_arrival and heap[0][1] == DELIVER)):
                t, _, _, kind, a, b = heapq.heappop(heap)
                if t > limit:
                    break
                now = t
                if kind == "step":
                    inst = self.instances[a]
                    if b != inst.version:
                        continue
                    finished, handed = inst.finish(now)
                    self.after_step(inst, finished, handed, now)
                    end = inst.start(now)
                    if end is None:
                        inst.busy = False
                    else:
                        self.push(end, STEP, "step", a, inst.version)
                    self.after_plan(inst, now)
                else:
                    self.on_transfer(a, b, now)
            elif ai < n:
                if next_arrival > limit:
                    break
                now = float(next_arrival)
                self.on_arrival(ai, now)
                ai += 1
            else:
                break
        return now
