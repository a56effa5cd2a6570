"""What rank 0 leaves behind for the driver: the measured Report, timeline and the model's outputs.

Outputs are stored the way inputs are read (runtime/inputs.py): one tensor per model output,
inputs stacked along the first dimension in input order.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import TypeAdapter

from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.plan.report import Report, Span
from edgewise.runtime.worker import SeatRecord

SPANS = TypeAdapter(list[Span])


@dataclass
class RunFiles:
    report: Report
    outputs: Path            # the model's outputs, written by rank 0 (.pt)
    timeline: list[Span]     # what each device computed and sent, when (runtime/measure.py)


def stack_outputs(records: list[SeatRecord]) -> list[torch.Tensor]:
    per_input = {k: outs for r in records for k, outs in r.outputs.items()}
    ks = sorted(per_input)
    return [torch.cat([per_input[k][i] for k in ks]) for i in range(len(per_input[ks[0]]))]


def _save_outputs(path: str | Path, outputs: list[torch.Tensor]) -> None:
    buf = io.BytesIO()
    torch.save(outputs[0] if len(outputs) == 1 else outputs, buf)
    write_atomic(path, buf.getvalue())


def write_result(folder: Path, report: Report, outputs: list[torch.Tensor], timeline: list[Span]) -> None:
    _save_outputs(folder / "outputs.pt", outputs)
    write_atomic(folder / "timeline.json", SPANS.dump_json(timeline))
    write_atomic(folder / "report.json", report.model_dump_json(indent=2))   # last: its presence says all is there


def read_result(folder: Path) -> RunFiles:
    try:
        report = Report.model_validate(json.loads((folder / "report.json").read_text()))
        timeline = SPANS.validate_json((folder / "timeline.json").read_bytes())
    except (OSError, ValueError) as e:     # pydantic's ValidationError is a ValueError
        raise EdgewiseError(f"run finished without a report in {folder} ({type(e).__name__})") from e
    return RunFiles(report, folder / "outputs.pt", timeline)
