"""The edgewise pipeline planner: contiguous stages over device classes, found by dynamic programming.

State of the DP: (boundary b, devices used per class, class and replica count of the last stage).
A transition appends a stage [p, q) on r replicas of one class. Devices of a class are
interchangeable, so the search runs over counts per class, not over device subsets or orders.

Throughput. The period of a plan is the largest of: stage time / replicas, the load of each
private link, and the summed load of the shared medium (its transfers share air time). A sum
inside a max does not decompose, so the planner fixes a bound B: one DP pass keeps every stage
and private link under B and minimises the medium's total load g(B). The best period is
min over B of max(B, g(B)); g does not increase with B, so bisection on B finds it, and every
pass's plan is evaluated exactly and the best one kept. Exact (to the bisection tolerance) with
at most one shared medium; with several, the pass minimises their sum, a heuristic.
Latency: one DP pass minimising compute + transfer along the path (replicas do not help).
Energy: the least-energy plan among those the throughput and latency searches visit.

Within a pass, for a fixed end q the feasible starts p form one window [lo(q), q) (stage time
and memory both grow with the range), so each transition is a windowed minimum over all q at
once, done with a sparse table in numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgewise.errors import EdgewiseError
from edgewise.plan.evaluate import StageSpan, channel_loads, evaluate, objective_value
from edgewise.plan.profile import GraphProfile, class_channel

_REL_TOL = 1e-7


@dataclass
class _State:
    vals: np.ndarray         # best value of a plan whose last stage ends at boundary q
    from_p: np.ndarray       # start of that last stage
    from_state: np.ndarray   # id of the state before it (-1: none)
    from_r: np.ndarray       # replicas of that last stage


def _window_argmin(a: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every q: the min and argmin of a[lo[q]:q] (inf and -1 where the window is empty)."""
    n = len(a)
    ext = np.append(a, np.inf)                      # index n is the "nothing here" sentinel
    table = [np.arange(n)]
    span = 1
    while 2 * span <= n:
        prev = table[-1]
        left, right = prev[: n - 2 * span + 1], prev[span: n - span + 1]
        best = np.where(ext[left] <= ext[right], left, right)
        table.append(np.concatenate([best, np.full(n - len(best), n)]))
        span *= 2
    q = np.arange(n)
    length = q - lo
    ok = length > 0
    level = np.zeros(n, dtype=np.int64)
    level[ok] = np.floor(np.log2(length[ok])).astype(np.int64)
    width = 1 << level
    i1 = np.stack(table)[level, np.where(ok, lo, 0)]
    i2 = np.stack(table)[level, np.where(ok, q - width, 0)]
    idx = np.where(ext[i1] <= ext[i2], i1, i2)
    vals = np.where(ok, ext[idx], np.inf)
    return vals, np.where(ok & np.isfinite(vals), idx, -1)


class _Search:
    """Precomputed per-class facts and one DP pass for a given mode and bound."""

    def __init__(self, prof: GraphProfile):
        self.prof = prof
        self.counts = [len(c.members) for c in prof.classes]
        k_n = len(prof.classes)
        self.channels = [[class_channel(prof.cluster, a, b) for b in prof.classes] for a in prof.classes]
        self.lowest_start = [prof.lowest_start(k) for k in range(k_n)]
        cut = np.array([prof.cut_bytes(b) for b in range(prof.n + 1)], dtype=float)
        self.cut = cut
        self.input_bytes = float(prof.live_bytes[0])
        # a class whose outgoing channels are all shared does not care how many replicas sent
        self.replicas_matter = [any(ch is not None and not ch.shared for ch in row) for row in self.channels]

    def run(self, mode: str, bound: float) -> list[StageSpan] | None:
        prof, n = self.prof, self.prof.n
        k_n = len(self.counts)
        states: list[_State] = []
        key_of: list[tuple] = []
        keys: dict[tuple, int] = {}
        by_level: list[list[int]] = [[] for _ in range(sum(self.counts) + 1)]

        def state_id(key: tuple, level: int) -> int:
            if key not in keys:
                keys[key] = len(states)
                key_of.append(key)
                states.append(_State(np.full(n + 1, np.inf), np.full(n + 1, -1), np.full(n + 1, -1),
                                     np.zeros(n + 1, dtype=np.int64)))
                by_level[level].append(keys[key])
            return keys[key]

        start = state_id(((0,) * k_n, -1, 0), 0)
        states[start].vals[0] = 0.0
        for level in range(len(by_level)):
            for sid in list(by_level[level]):
                (used, k, r), st = key_of[sid], states[sid]
                if not np.isfinite(st.vals).any():
                    continue
                for k2 in range(k_n):
                    for r2 in range(1, self.counts[k2] - used[k2] + 1):
                        if mode == "latency" and r2 > 1:
                            break
                        a = self._entry_values(st.vals, k, r, k2, r2, mode, bound)
                        if a is None:
                            continue
                        lo = self.lowest_start[k2]
                        if mode == "throughput":
                            t = prof.time_prefix_s[k2]
                            lo = np.maximum(lo, np.searchsorted(t, t - r2 * bound * (1 + 1e-12), side="left"))
                        vals, arg = _window_argmin(a, lo)
                        if mode == "latency":
                            vals = vals + prof.time_prefix_s[k2]
                        new_used = tuple(u + (r2 if j == k2 else 0) for j, u in enumerate(used))
                        rkey = r2 if self.replicas_matter[k2] else 1
                        did = state_id((new_used, k2, rkey), level + r2)
                        dest = states[did]
                        better = vals < dest.vals
                        dest.vals[better] = vals[better]
                        dest.from_p[better] = arg[better]
                        dest.from_state[better] = sid
                        dest.from_r[better] = r2
        ends = [(states[s].vals[n], s) for s in range(len(states)) if s != start]
        best_val, best = min(ends, default=(np.inf, -1))
        if not np.isfinite(best_val):
            return None
        return self._spans(states, key_of, best)

    def _entry_values(self, vals: np.ndarray, k: int, r: int, k2: int, r2: int, mode: str,
                      bound: float) -> np.ndarray | None:
        """Value of a plan ending at p plus what entering stage (k2, r2) at p costs."""
        if k < 0:
            a = vals.copy()
            if r2 > 1 and mode == "throughput":
                # inputs arrive on the first replica, which forwards the others' share
                ch = self.channels[k2][k2]
                if ch is None:
                    return None
                send_s = self.input_bytes / ch.bandwidth_bytes_per_s
                if ch.shared:
                    a = a + send_s * (r2 - 1) / r2
                elif send_s / r2 > bound * (1 + 1e-12):
                    return None
        else:
            ch = self.channels[k][k2]
            if ch is None:
                return None
            send_s = self.cut / ch.bandwidth_bytes_per_s
            if mode == "latency":
                a = vals + np.where(self.cut > 0, send_s + ch.latency_s, 0.0)
            elif ch.shared:
                a = np.where(send_s <= bound * (1 + 1e-12), vals + send_s, np.inf)
            else:
                a = np.where(send_s / math.lcm(r, r2) <= bound * (1 + 1e-12), vals, np.inf)
        if mode == "latency":
            a = a - self.prof.time_prefix_s[k2]
        return a

    def _spans(self, states: list[_State], key_of: list[tuple], sid: int) -> list[StageSpan]:
        stages: list[tuple[int, int, int, int]] = []
        q = self.prof.n
        while states[sid].from_state[q] >= 0:
            st = states[sid]
            p, r = int(st.from_p[q]), int(st.from_r[q])
            stages.append((p, q, key_of[sid][1], r))
            sid, q = int(st.from_state[q]), p
        stages.reverse()
        taken = [0] * len(self.counts)
        spans = []
        for p, q, k, r in stages:
            members = self.prof.classes[k].members
            spans.append(StageSpan(p, q, tuple(members[taken[k]: taken[k] + r])))
            taken[k] += r
        return spans


def plan_pipeline(prof: GraphProfile, objective: str) -> list[StageSpan]:
    """The best contiguous pipeline for `objective`; EdgewiseError when nothing fits."""
    search = _Search(prof)
    seen: list[list[StageSpan]] = []
    latency_plan = search.run("latency", math.inf)
    if latency_plan is None:
        raise _nothing_fits(prof)
    seen.append(latency_plan)
    if objective != "latency":
        seen += _bisect_period(prof, search)
    costs = [(objective_value(evaluate(prof, s), objective), i) for i, s in enumerate(seen)]
    return seen[min(costs)[1]]


def _bisect_period(prof: GraphProfile, search: _Search) -> list[list[StageSpan]]:
    """Plans visited while bisecting the period bound; the best of them is throughput-optimal."""
    found = []
    first = search.run("throughput", math.inf)
    if first is None:
        return found
    found.append(first)
    hi = evaluate(prof, first).period_s
    # no plan beats the fleet's compute bound, nor the least medium load any plan has
    compute_bound = 1.0 / sum(len(c.members) / prof.time_prefix_s[k, -1] for k, c in enumerate(prof.classes)
                              if prof.time_prefix_s[k, -1] > 0) if prof.time_prefix_s[:, -1].max() > 0 else 0.0
    lo = max(compute_bound, _medium_load(prof, first) if _single_medium(prof) else 0.0) * (1 - 1e-9)
    for _ in range(64):
        if not math.isfinite(hi) or hi <= lo * (1 + _REL_TOL) or hi <= 0:
            break
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        spans = search.run("throughput", mid)
        if spans is None:
            lo = mid
            continue
        found.append(spans)
        period = evaluate(prof, spans).period_s
        if period <= mid * (1 + 1e-12):
            hi = min(hi, period)
        else:
            lo = mid
            hi = min(hi, period)
    return found


def _single_medium(prof: GraphProfile) -> bool:
    return len(prof.cluster.media) <= 1


def _medium_load(prof: GraphProfile, spans: list[StageSpan]) -> float:
    """With no bound the pass minimises medium load alone: a lower bound on every plan's period."""
    loads = channel_loads(prof, spans) or {}
    return sum(v for key, v in loads.items() if any(key == m.name for m in prof.cluster.media))


def _nothing_fits(prof: GraphProfile) -> EdgewiseError:
    largest = max(prof.cluster.nodes, key=lambda nd: nd.device.memory_bytes)
    worst_op = int(max(prof.stage_memory_bytes(i, i + 1) for i in range(prof.n)))
    total = sum(nd.device.memory_bytes for nd in prof.cluster.nodes)
    need = prof.stage_memory_bytes(0, prof.n)
    return EdgewiseError(
        f"model {prof.graph.model} does not fit cluster {prof.cluster.name}: it needs "
        f"{_gib(need)} in all and {_gib(worst_op)} for its largest op, the largest device "
        f"({largest.name}) has {_gib(largest.device.memory_bytes)} and all {len(prof.cluster.nodes)} "
        f"devices together {_gib(total)}")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"

