"""The Plan: data (JSON) that `simulate` and `run` both read. Versioned and self-contained."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    predicted: Report | None = None             # what the planner's cost model expects

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)
