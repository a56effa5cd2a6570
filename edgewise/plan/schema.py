"""The Plan: data (JSON) that `simulate` and `run` both read. Versioned and self-contained."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster
from edgewise.plan.report import Report

SCHEMA_VERSION = 1
Objective = Literal["throughput", "latency", "energy"]


class Stage(BaseModel):
    """A pipeline stage: a contiguous (in topological order) set of ops on its device(s).

    Several devices in one stage are replicas that take inputs in turn.
    """
    model_config = ConfigDict(extra="forbid")

    devices: list[str] = Field(min_length=1)
    ops: list[str] = Field(min_length=1)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = Field(SCHEMA_VERSION, alias="schema")
    model: str                                  # model spec, as accepted everywhere
    level: Literal["op", "module"] = "op"
    cluster: Cluster
    objective: Objective = "throughput"
    batch: int = Field(1, ge=1)
    planner: str = ""                           # which planner made it ("edgewise", "even", ...)
    stages: list[Stage] = Field(min_length=1)
    # Inputs admitted and not yet through the last stage: the first device takes input k only
    # once it has word that input k - max_in_flight is out (word comes every few inputs, so
    # somewhat fewer may be in flight: plan/window.py). None: only the senders' queues hold inputs back, and
    # a queue fills in front of whichever stage is slowest that run, so latency swings with it.
    max_in_flight: int | None = Field(None, ge=1)
    predicted: Report | None = None             # what the planner's cost model expects

    @model_validator(mode="after")
    def _devices_exist_once(self) -> "Plan":
        known = {n.name for n in self.cluster.nodes}
        used = [d for st in self.stages for d in st.devices]
        for d in used:
            if d not in known:
                raise ValueError(f"stage device {d!r} is not in cluster {self.cluster.name!r} "
                                 f"(devices: {sorted(known)})")
        if len(set(used)) != len(used):
            raise ValueError("each device may serve only one stage")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def load_plan(path: str) -> Plan:
    """Read a Plan JSON file; any problem is one line naming the file and the field."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise EdgewiseError(f"{path}: no such plan file (make one with `edgewise plan MODEL -o {path}`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgewiseError(f"{path}: not a plan JSON file ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise EdgewiseError(f"{path}: a plan is a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA_VERSION:
        raise EdgewiseError(f"{path}: plan schema {data.get('schema')!r} is not supported "
                            f"(this edgewise reads schema {SCHEMA_VERSION}); re-run `edgewise plan`")
    try:
        return Plan.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "plan"
        raise EdgewiseError(f"{path}: {where}: {err['msg']}") from None
