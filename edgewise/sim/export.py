"""Pictures of a timeline: a Chrome/Perfetto trace and a PNG Gantt chart."""
from __future__ import annotations

import io
import json

from edgewise.sim.core import Span


def _occupying(timeline: list[Span]) -> list[Span]:
    """Spans that keep a device or channel busy (a link's propagation latency keeps none)."""
    return [s for s in timeline if ":" in s.resource]


def chrome_trace(timeline: list[Span], title: str = "edgewise") -> str:
    """Trace Event JSON (chrome://tracing, ui.perfetto.dev): one track per device or channel."""
    timeline = _occupying(timeline)
    tracks = sorted({s.resource for s in timeline}, key=lambda r: (not r.startswith("device:"), r))
    tid = {r: i for i, r in enumerate(tracks)}
    events = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": title}}]
    events += [{"name": "thread_name", "ph": "M", "pid": 0, "tid": tid[r], "args": {"name": r}} for r in tracks]
    events += [{"name": s.task, "ph": "X", "pid": 0, "tid": tid[s.resource], "ts": s.start_s * 1e6,
                "dur": (s.end_s - s.start_s) * 1e6, "args": {k: v for k, v in s.tags.items()}} for s in timeline]
    return json.dumps({"traceEvents": events, "displayTimeUnit": "ms"})


def gantt_png(timeline: list[Span], title: str) -> bytes:
    """A Gantt chart, one row per resource, coloured by input, as PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = _occupying(timeline)
    rows = sorted({s.resource for s in timeline}, key=lambda r: (not r.startswith("device:"), r))
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.45 * len(rows)))
    cmap = plt.get_cmap("tab20")
    for y, r in enumerate(rows):
        spans = [s for s in timeline if s.resource == r]
        ax.broken_barh([(s.start_s * 1e3, (s.end_s - s.start_s) * 1e3) for s in spans], (y - 0.4, 0.8),
                       facecolors=[cmap(s.tags.get("input", 0) % 20) for s in spans], edgecolor="black", linewidth=0.3)
    ax.set_yticks(range(len(rows)), [r.split(":", 1)[1] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("time (ms); colour = input")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
