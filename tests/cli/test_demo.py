"""`edgewise demo` (what `make demo` runs): three plans compared, pictures written."""
import json
import subprocess
import sys


def test_default_demo_compares_three_plans_and_writes_the_timeline(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgewise", "demo", "--json", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["model"] == "zoo:resnet50" and result["cluster"] == "edge-fleet"
    rows = {row["planner"]: row for row in result["rows"]}
    assert set(rows) == {"single", "even", "edgewise"} and rows["single"]["speedup_vs_single"] == 1.0
    assert rows["edgewise"]["simulated"]["throughput_per_s"] >= rows["even"]["simulated"]["throughput_per_s"]
    assert (tmp_path / "gantt.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "plan.json").read_text())["planner"] == "edgewise"
    # the plan was also run for real, and it sent exactly the bytes the planner charged for
    assert result["measured"]["source"] == "run" and result["measured"]["throughput_per_s"] > 0
    assert result["errors"]["bytes_sent"] == 0.0
