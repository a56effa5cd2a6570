"""The Plan JSON is versioned and round-trips; a wrong schema number is refused."""
import json

import pytest
from pydantic import ValidationError

from edgewise.hardware.cluster import Cluster, Device, Node
from edgewise.plan.schema import Plan, Stage

PI = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=1 << 30,
            mem_bandwidth_bytes_per_s=1e9)


def make_plan():
    return Plan(model="zoo:resnet18", cluster=Cluster(name="c", nodes=[Node(name="a", device=PI)]),
                stages=[Stage(devices=["a"], ops=["conv1", "fc"])])


def test_plan_round_trips_with_schema_key():
    text = make_plan().to_json()
    data = json.loads(text)
    assert data["schema"] == 1 and data["stages"][0]["ops"] == ["conv1", "fc"]
    assert Plan.model_validate_json(text) == make_plan()


def test_wrong_schema_version_refused():
    data = json.loads(make_plan().to_json())
    data["schema"] = 2
    with pytest.raises(ValidationError, match="schema"):
        Plan.model_validate(data)


def test_stage_on_unknown_device_refused():
    data = json.loads(make_plan().to_json())
    data["stages"][0]["devices"] = ["ghost"]
    with pytest.raises(ValidationError, match="ghost"):
        Plan.model_validate(data)


def test_load_plan_errors_are_one_line(tmp_path):
    from edgewise.errors import EdgewiseError
    from edgewise.plan.schema import load_plan
    cases = {"missing.json": None, "bad.json": "{not json", "list.json": "[1]",
             "old.json": json.dumps({**json.loads(make_plan().to_json()), "schema": 0})}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(EdgewiseError) as e:
            load_plan(str(tmp_path / name))
        assert "\n" not in str(e.value) and name in str(e.value)
