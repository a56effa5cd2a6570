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

import itertools
import math

import numpy as np

from edgewise.errors import EdgewiseError
from edgewise.plan.evaluate import StageSpan, channel_loads, evaluate, objective_value
from edgewise.plan.profile import GraphProfile, class_channel

_REL_TOL = 1e-3                 # bisection stops when the period is known this closely


def _table(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse table of argmins over each row of `a`: table[j, row, i] = argmin of a[row, i:i+2**j].

    Indices are flat positions in the padded array `ext` (row-major), whose last column is inf.
    """
    rows, n = a.shape
    ext = np.concatenate([a, np.full((rows, 1), np.inf)], axis=1)
    flat = ext.ravel()
    levels = max(1, int(np.log2(n)) + 1) if n else 1
    pad = (np.arange(rows) * (n + 1) + n)[:, None]             # flat index of each row's inf
    table = np.empty((levels, rows, n), dtype=np.int64)
    table[0] = np.arange(n)[None, :] + (np.arange(rows) * (n + 1))[:, None]
    span = 1
    for j in range(1, levels):
        prev = table[j - 1]
        m = n - 2 * span + 1
        left, right = prev[:, :m], prev[:, span: span + m]
        table[j, :, :m] = np.where(flat[left] <= flat[right], left, right)
        table[j, :, m:] = pad
        span *= 2
    return flat, table


def _window_argmin(flat: np.ndarray, table: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every row and every q: min and (column) argmin of the row over [lo[q], q)
    (inf and -1 where the window is empty)."""
    n = table.shape[2]
    q = np.arange(n)
    length = q - lo
    ok = length > 0
    level = np.zeros(n, dtype=np.int64)
    level[ok] = np.floor(np.log2(length[ok])).astype(np.int64)
    i1 = table[level, :, np.where(ok, lo, 0)].T
    i2 = table[level, :, np.where(ok, q - (1 << level), 0)].T
    v1, v2 = flat[i1], flat[i2]
    vals = np.where(ok, np.minimum(v1, v2), np.inf)
    return vals, np.where(ok & np.isfinite(vals), np.where(v1 <= v2, i1, i2) % (n + 1), -1)


def candidate_boundaries(prof: GraphProfile, limit: int) -> np.ndarray:
    """All boundaries of a small graph; of a big one, the cheapest cut in each of `limit` windows
    of equal compute, so a search over positions stays small while stages stay balanceable."""
    n = prof.n
    if n + 1 <= limit:
        return np.arange(n + 1)
    work = prof.time_prefix_s.mean(axis=0)
    edges = np.unique(np.searchsorted(work, np.linspace(0, work[-1], limit), side="left").clip(1, n))
    picks = [a + int(np.argmin(prof.live_bytes[a:b])) for a, b in zip(edges, edges[1:]) if b > a]
    return np.unique(np.array([0, *picks, n]))


class PipelineSearch:
    """One DP pass for a mode and bound, vectorised over all states that use equally many devices.

    A state is (devices used per class, the last stage's channel group, its replicas). Classes
    whose channels to every class are the same share a channel group, so on one shared medium
    the last stage's class drops out of the state.
    """

    def __init__(self, prof: GraphProfile, max_positions: int = 96):
        self.prof = prof
        k_n = len(prof.classes)
        self.counts = [len(c.members) for c in prof.classes]
        self.pos = candidate_boundaries(prof, max_positions)
        self.time = prof.time_prefix_s[:, self.pos]
        self.lowest = [np.searchsorted(self.pos, prof.lowest_start(k)[self.pos], side="left") for k in range(k_n)]
        self.cut = np.array([prof.cut_bytes(int(b)) for b in self.pos], dtype=float)
        self.input_bytes = float(prof.live_bytes[0])
        self._costs: dict[tuple, np.ndarray] = {}
        self._group_classes(k_n)
        self._enumerate_states(k_n)

    def _group_classes(self, k_n: int) -> None:
        def entry(k: int, k2: int):
            if k == k2 and self.counts[k] == 1:
                return "any"                        # never used: one device cannot follow itself
            return class_channel(self.prof.cluster, self.prof.classes[k], self.prof.classes[k2])

        rows: list[list] = []
        self.group = []
        for k in range(k_n):
            mine = [entry(k, k2) for k2 in range(k_n)]
            for g, row in enumerate(rows):
                if all(x == "any" or y == "any" or x == y for x, y in zip(mine, row)):
                    rows[g] = [y if y != "any" else x for x, y in zip(mine, row)]
                    self.group.append(g)
                    break
            else:
                rows.append(mine)
                self.group.append(len(rows) - 1)
        self.channels = [[None if x == "any" else x for x in row] for row in rows]
        # a group whose outgoing channels are all shared does not care how many replicas sent
        self.replicas_matter = [any(ch is not None and not ch.shared for ch in row) for row in self.channels]
        self.only_compute_needs_replicas = [
            not self.replicas_matter[self.group[k2]] and all(row[k2] is None or row[k2].shared for row in self.channels)
            for k2 in range(k_n)]

    def _enumerate_states(self, k_n: int) -> None:
        levels: dict[int, list[tuple]] = {}
        for used in itertools.product(*(range(c + 1) for c in self.counts)):
            level = sum(used)
            if level == 0:
                levels.setdefault(0, []).append((used, -1, 1))
                continue
            for g in sorted({self.group[k] for k in range(k_n) if used[k]}):
                most = max(used[k] for k in range(k_n) if self.group[k] == g)
                for r in (range(1, most + 1) if self.replicas_matter[g] else (1,)):
                    levels.setdefault(level, []).append((used, g, r))
        self.levels = [levels.get(level, []) for level in range(sum(self.counts) + 1)]
        self.row_of = {key: (level, i) for level, keys in enumerate(self.levels) for i, key in enumerate(keys)}
        # per (level, k2, r2): source rows that may add r2 devices of class k2, and where they land
        self.moves: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        for level, keys in enumerate(self.levels):
            for k2 in range(k_n):
                for r2 in range(1, self.counts[k2] + 1):
                    src, dst = [], []
                    for i, (used, g, r) in enumerate(keys):
                        if used[k2] + r2 > self.counts[k2]:
                            continue
                        new_used = tuple(u + (r2 if j == k2 else 0) for j, u in enumerate(used))
                        g2 = self.group[k2]
                        src.append(i)
                        dst.append(self.row_of[(new_used, g2, r2 if self.replicas_matter[g2] else 1)][1])
                    if src:
                        self.moves[(level, k2, r2)] = (np.array(src), np.array(dst))

    def run(self, mode: str, bound: float) -> list[StageSpan] | None:
        n_pos, k_n = len(self.pos), len(self.counts)
        shape = [(len(keys), n_pos) for keys in self.levels]
        vals = [np.full(s, np.inf) for s in shape]
        from_p = [np.full(s, -1) for s in shape]
        from_level = [np.full(s, -1) for s in shape]
        from_row = [np.full(s, -1) for s in shape]
        from_k = [np.full(s, -1) for s in shape]
        from_r = [np.zeros(s, dtype=np.int64) for s in shape]
        vals[0][0, 0] = 0.0
        for level, keys in enumerate(self.levels):
            alive = np.isfinite(vals[level]).any(axis=1) if keys else np.zeros(0, bool)
            if not alive.any():
                continue
            for k2 in range(k_n):
                cached = None
                for r2 in range(1, self.counts[k2] + 1):
                    if mode == "latency" and r2 > 1:
                        break
                    move = self.moves.get((level, k2, r2))
                    if move is None:
                        continue
                    keep = alive[move[0]]
                    src, dst = move[0][keep], move[1][keep]
                    if not len(src):
                        continue
                    costs = [self._entry_cost(keys[i], k2, r2, mode, bound) for i in src]
                    # rows that can take r2 devices are a subset of those that can take fewer: when
                    # their entry costs are the same arrays, reuse the table built for fewer
                    at = np.searchsorted(cached[0], src) if cached is not None else None
                    if cached is None or any(id(c) != cached[1][i] for c, i in zip(costs, at)):
                        a = vals[level][src] + np.stack(costs)
                        if mode == "latency":
                            a = a - self.time[k2]
                        cached = (src, [id(c) for c in costs], *_table(a))
                        at = np.arange(len(src))
                    flat, table = cached[2], cached[3]
                    if len(at) != len(cached[0]):
                        table = table[:, at, :]
                    lo = self.lowest[k2]
                    if mode == "throughput":
                        t = self.time[k2]
                        lo = np.maximum(lo, np.searchsorted(t, t - r2 * bound * (1 + 1e-12), side="left"))
                    new, arg = _window_argmin(flat, table, lo)
                    # once r2 replicas leave stage time unconstrained, more replicas only add cost
                    more_is_useless = self.only_compute_needs_replicas[k2] and np.all(lo <= self.lowest[k2])
                    if mode == "latency":
                        new = new + self.time[k2]
                    self._merge(level + r2, dst, new, arg, level, src, k2, r2,
                                vals, from_p, from_level, from_row, from_k, from_r)
                    if more_is_useless:
                        break
        best = (np.inf, -1, -1)
        for level in range(1, len(self.levels)):
            if len(self.levels[level]):
                i = int(np.argmin(vals[level][:, -1]))
                best = min(best, (float(vals[level][i, -1]), level, i))
        if not np.isfinite(best[0]):
            return None
        return self._spans(best[1], best[2], from_p, from_level, from_row, from_k, from_r)

    def _entry_cost(self, key: tuple, k2: int, r2: int, mode: str, bound: float) -> np.ndarray:
        """What entering a stage of r2 devices of class k2 at each position adds to the value
        (inf where it is not allowed). Cached: equal arguments give the very same array."""
        used, g, r = key
        shared_first = g < 0 and r2 > 1 and mode == "throughput"
        ch = self.channels[self.group[k2]][k2] if g < 0 else self.channels[g][k2]
        private = ch is not None and not ch.shared
        # the first stage's first device, while it is the only stage so far, also forwards inputs
        forward = self._forward_s(self.channels[g][used.index(r)], r) if private and g >= 0 and sum(used) == r else 0.0
        ck = (g, r if private else 0, k2, r2 if shared_first else 0, forward, mode, bound)
        if ck in self._costs:
            return self._costs[ck]
        cost = np.zeros(len(self.pos))
        if g < 0:
            cost[1:] = np.inf                        # the first stage starts at the first op
            if shared_first:
                # inputs arrive on the first replica, which forwards the others' share
                if ch is None:
                    cost[:] = np.inf
                elif ch.shared:
                    cost[0] = self.input_bytes / ch.bandwidth_bytes_per_s * (r2 - 1) / r2
                elif self._forward_s(ch, r2) > bound * (1 + 1e-12):
                    cost[:] = np.inf
        elif ch is None:
            cost[:] = np.inf
        else:
            send_s = self.cut / ch.bandwidth_bytes_per_s
            if mode == "latency":
                cost = np.where(self.cut > 0, send_s + ch.latency_s, 0.0)
            elif ch.shared:
                cost = np.where(send_s <= bound * (1 + 1e-12), send_s, np.inf)
            else:
                # each of the r senders sends its share through its one sender thread
                cost = np.where(send_s / r + forward <= bound * (1 + 1e-12), 0.0, np.inf)
        self._costs[ck] = cost
        return cost

    def _forward_s(self, ch, replicas: int) -> float:
        """Busy seconds per input of stage 0's first device forwarding the other replicas' inputs
        over private links."""
        if ch is None or ch.shared:
            return 0.0
        return self.input_bytes / ch.bandwidth_bytes_per_s * (replicas - 1) / replicas

    @staticmethod
    def _merge(level, dst, new, arg, src_level, src, k2, r2, vals, from_p, from_level, from_row, from_k, from_r):
        """Keep, for every destination state and position, the better of what it had and `new`."""
        todo = np.arange(len(dst))
        while len(todo):
            d_all = dst[todo]
            _, first = np.unique(d_all, return_index=True)
            pick = todo if len(first) == len(todo) else todo[first]
            d = dst[pick]
            cur, cand = vals[level][d], new[pick]
            better = cand < cur
            vals[level][d] = np.where(better, cand, cur)
            from_p[level][d] = np.where(better, arg[pick], from_p[level][d])
            from_level[level][d] = np.where(better, src_level, from_level[level][d])
            from_row[level][d] = np.where(better, src[pick][:, None], from_row[level][d])
            from_k[level][d] = np.where(better, k2, from_k[level][d])
            from_r[level][d] = np.where(better, r2, from_r[level][d])
            todo = todo[len(pick):] if pick is todo else np.setdiff1d(todo, pick, assume_unique=True)

    def _spans(self, level, row, from_p, from_level, from_row, from_k, from_r) -> list[StageSpan]:
        stages: list[tuple[int, int, int, int]] = []
        q = len(self.pos) - 1
        while level > 0:
            p, k, r = int(from_p[level][row, q]), int(from_k[level][row, q]), int(from_r[level][row, q])
            stages.append((int(self.pos[p]), int(self.pos[q]), k, r))
            level, row, q = int(from_level[level][row, q]), int(from_row[level][row, q]), p
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
    search = PipelineSearch(prof)
    seen = [] if objective == "throughput" else [search.run("latency", math.inf)]
    if objective != "latency":
        seen += bisect_period(prof, search)
    seen = [s for s in seen if s is not None]
    if not seen:
        raise nothing_fits(prof)
    # the search does not see the runtime's own per-message costs; where they make every split
    # lose, the fastest device alone must still be on the table
    fastest = min(prof.cluster.nodes, key=lambda nd: prof.device_time_s(prof.class_of[nd.name], 0, prof.n))
    seen.append([StageSpan(0, prof.n, (fastest.name,))])
    costs = [(objective_value(evaluate(prof, s), objective), i) for i, s in enumerate(seen)]
    return seen[min(costs)[1]]


def bisect_period(prof: GraphProfile, search: PipelineSearch) -> list[list[StageSpan]]:
    """Plans visited while bisecting the period bound; the best of them is throughput-optimal."""
    found = []
    first = search.run("throughput", math.inf)
    if first is None:
        return found
    found.append(first)
    hi = evaluate(prof, first).period_s
    # no plan beats every op on its fastest class spread evenly over all devices, nor the
    # least medium load any plan has (what the unbounded pass found)
    op_s = np.diff(prof.time_prefix_s, axis=1)
    spread = float(op_s.min(axis=0).sum()) / len(prof.cluster.nodes)
    lo = max(spread, _medium_load(prof, first) if len(prof.cluster.media) <= 1 else 0.0) * (1 - 1e-9)
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


def _medium_load(prof: GraphProfile, spans: list[StageSpan]) -> float:
    """With no bound the pass minimises medium load alone: a lower bound on every plan's period."""
    loads = channel_loads(prof, spans) or {}
    return sum(v for key, v in loads.items() if any(key == m.name for m in prof.cluster.media))


def nothing_fits(prof: GraphProfile) -> EdgewiseError:
    largest = max(prof.cluster.nodes, key=lambda nd: nd.device.memory_bytes)
    worst_op = int(max(prof.stage_memory_bytes(i, i + 1) for i in range(prof.n)))
    total = sum(nd.device.memory_bytes for nd in prof.cluster.nodes)
    need = prof.stage_memory_bytes(0, prof.n)
    return EdgewiseError(
        f"model {prof.graph.model} does not fit cluster {prof.cluster.name}: it needs "
        f"{gib(need)} in all and {gib(worst_op)} for its largest op, the largest device "
        f"({largest.name}) has {gib(largest.device.memory_bytes)} and all {len(prof.cluster.nodes)} "
        f"devices together {gib(total)}")


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"

