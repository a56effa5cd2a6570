"""Pictures of timelines: a Chrome/Perfetto trace and a PNG Gantt chart.

Either holds one or more panels, each a titled timeline: a simulation's alone, or a prediction
above what a run measured (`edgewise run --compare`), on one time axis.
"""
from __future__ import annotations

import io
import json

from edgewise.plan.report import Span

Panel = tuple[str, list[Span]]     # (title, timeline)


def _occupying(timeline: list[Span]) -> list[Span]:
    """Spans that keep a device, channel or sender busy (a link's propagation latency keeps none)."""
    return [s for s in timeline if ":" in s.resource]


def _rows(timeline: list[Span]) -> list[str]:
    return sorted({s.resource for s in timeline}, key=lambda r: (not r.startswith("device:"), r))


def chrome_trace(panels: list[Panel]) -> str:
    """Trace Event JSON (chrome://tracing, ui.perfetto.dev): a process per panel, a track per
    device, channel or sender."""
    events = []
    for pid, (title, timeline) in enumerate(panels):
        timeline = _occupying(timeline)
        tid = {r: i for i, r in enumerate(_rows(timeline))}
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": title}})
        events += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": i, "args": {"name": r}} for r, i in tid.items()]
        events += [{"name": s.task, "ph": "X", "pid": pid, "tid": tid[s.resource], "ts": s.start_s * 1e6,
                    "dur": (s.end_s - s.start_s) * 1e6, "args": dict(s.tags)} for s in timeline]
    return json.dumps({"traceEvents": events, "displayTimeUnit": "ms"})


def gantt_png(panels: list[Panel], inputs: range | None = None) -> bytes:
    """A Gantt chart per panel, stacked on one time axis, one row per resource, coloured by
    input, as PNG bytes. With `inputs`, only their spans, each panel's time counted from the
    first of them (a long stream's spans are too thin to see whole)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(title, _window(_occupying(timeline), inputs)) for title, timeline in panels]
    heights = [max(1, len(_rows(t))) for _, t in shown]
    fig, axes = plt.subplots(len(shown), 1, sharex=True, squeeze=False, height_ratios=heights,
                             figsize=(12, 0.9 * len(shown) + 0.45 * sum(heights)))
    cmap = plt.get_cmap("tab20")
    for ax, (title, timeline) in zip(axes[:, 0], shown):
        rows = _rows(timeline)
        for y, r in enumerate(rows):
            spans = [s for s in timeline if s.resource == r]
            ax.broken_barh([(s.start_s * 1e3, (s.end_s - s.start_s) * 1e3) for s in spans], (y - 0.4, 0.8),
                           facecolors=[cmap(s.tags.get("input", 0) % 20) for s in spans], edgecolor="black",
                           linewidth=0.3)
        ax.set_yticks(range(len(rows)), [r.removeprefix("device:") for r in rows])
        ax.invert_yaxis()
        ax.set_title(title)
    axes[-1, 0].set_xlabel("time (ms); colour = input")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _window(timeline: list[Span], inputs: range | None) -> list[Span]:
    if inputs is None:
        return timeline
    kept = [s for s in timeline if s.tags.get("input") in inputs]
    t0 = min((s.start_s for s in kept), default=0.0)
    return [Span(s.task, s.resource, s.start_s - t0, s.end_s - t0, s.tags) for s in kept]
