"""What rank 0 leaves for the driver: read back whole, or one line saying it is not there."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

from edgewise.errors import EdgewiseError
from edgewise.plan.report import LatencyStats, Report, Span
from edgewise.runtime.result import read_result, write_result

REPORT = Report(source="run", inputs=4, throughput_per_s=10.0, latency_s=LatencyStats(p50=0.1, p99=0.2),
                per_stage_s=[0.05], bubble_fraction=0.1, bytes_sent=100, peak_memory_bytes={"d0": 1})
TIMELINE = [Span("stage0 input0", "device:d0", 0.0, 0.01, {"input": 0, "stage": 0, "device": "d0", "kind": "compute"}),
            Span("send input0 d0->d1", "sender:d0", 0.01, 0.02, {"input": 0, "device": "d0", "kind": "send"})]


def test_a_result_reads_back_as_written(tmp_path):
    write_result(tmp_path, REPORT, [torch.ones(2, 3)], TIMELINE)
    files = read_result(tmp_path)
    assert files.report == REPORT and files.timeline == TIMELINE
    assert torch.equal(torch.load(files.outputs, weights_only=True), torch.ones(2, 3))


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
                 st.recursive(st.none() | st.integers() | st.text(max_size=8),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                              max_leaves=8).map(json.dumps)))
def test_a_damaged_timeline_is_one_error_not_a_traceback(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("r")
    write_result(folder, REPORT, [torch.ones(1)], TIMELINE)
    (folder / "timeline.json").write_text(text)
    try:
        files = read_result(folder)
    except EdgewiseError as e:
        assert "without a report" in str(e)
    else:   # only a list of whole, well-typed spans reads back
        assert all(isinstance(s.task, str) and isinstance(s.start_s, float) and isinstance(s.tags, dict)
                   for s in files.timeline)


def test_a_missing_timeline_is_one_error(tmp_path):
    write_result(tmp_path, REPORT, [torch.ones(1)], TIMELINE)
    (tmp_path / "timeline.json").unlink()
    with pytest.raises(EdgewiseError, match="without a report"):
        read_result(tmp_path)
