"""A small discrete-event core: tasks with durations and dependencies on resources with capacity.

The nouns, SimPy-style: an `Environment` holds an event queue; a `Resource` (a device, a link,
a shared medium) serves `capacity` tasks at once (math.inf: a pure delay that never queues),
the rest wait first come first served; a
`Task` runs for `duration_s` on one resource once every task it depends on has finished (plus
that task's `lag_s`, e.g. a link's propagation latency, which delays dependents without keeping
the resource busy); the `timeline` records what ran where. Pipeline schedules, collectives and
schedulers are all built from these nouns.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from edgewise.plan.report import Span


@dataclass(eq=False)
class Resource:
    name: str
    capacity: float = 1
    busy: int = 0
    waiting: list = field(default_factory=list)     # heap of (ready time, order, task)


@dataclass(eq=False)
class Task:
    name: str
    resource: Resource
    duration_s: float
    after: list["Task"] = field(default_factory=list)
    lag_s: float = 0.0
    tags: dict = field(default_factory=dict)        # free-form labels for reports (input, stage...)
    start_s: float | None = None
    end_s: float | None = None
    _pending: int = 0
    _ready_s: float = 0.0
    _dependents: list["Task"] = field(default_factory=list)


class Environment:
    def __init__(self) -> None:
        self.now = 0.0
        self.tasks: list[Task] = []
        self.resources: dict[str, Resource] = {}
        self._queue: list = []                       # (time, order, kind, task)
        self._order = itertools.count()

    def resource(self, name: str, capacity: float = 1) -> Resource:
        """The resource called `name`, made on first use."""
        if name not in self.resources:
            self.resources[name] = Resource(name, capacity)
        return self.resources[name]

    def task(self, name: str, resource: Resource, duration_s: float, after: list[Task] = (),
             lag_s: float = 0.0, **tags) -> Task:
        t = Task(name, resource, max(0.0, duration_s), list(after), lag_s, tags)
        self.tasks.append(t)
        return t

    def run(self) -> list[Span]:
        """Play every task out; returns the timeline in start order."""
        for t in self.tasks:
            t._pending = len(t.after)
            for dep in t.after:
                dep._dependents.append(t)
        for t in self.tasks:
            if t._pending == 0:
                self._push(0.0, "ready", t)
        while self._queue:
            self.now, _, kind, t = heapq.heappop(self._queue)
            if kind == "ready":
                heapq.heappush(t.resource.waiting, (self.now, next(self._order), t))
                self._dispatch(t.resource)
            elif kind == "done":
                t.resource.busy -= 1
                for d in t._dependents:
                    d._ready_s = max(d._ready_s, self.now + t.lag_s)
                    d._pending -= 1
                    if d._pending == 0:
                        self._push(d._ready_s, "ready", d)
                self._dispatch(t.resource)
        stuck = [t.name for t in self.tasks if t.end_s is None]
        if stuck:
            raise ValueError(f"tasks never ran (a dependency cycle?): {stuck[:5]}")
        return sorted((Span(t.name, t.resource.name, t.start_s, t.end_s, t.tags) for t in self.tasks),
                      key=lambda s: (s.start_s, s.resource))

    def _dispatch(self, r: Resource) -> None:
        while r.waiting and r.busy < r.capacity:
            _, _, t = heapq.heappop(r.waiting)
            r.busy += 1
            t.start_s, t.end_s = self.now, self.now + t.duration_s
            self._push(t.end_s, "done", t)

    def _push(self, time_s: float, kind: str, t: Task) -> None:
        heapq.heappush(self._queue, (time_s, next(self._order), kind, t))
