"""`edgewise testbed up|down|status`: an emulated fleet on this Linux host."""
from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit
from edgewise.errors import EdgewiseError
from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.drive import build_testbed
from edgewise.testbed.layout import Layout

testbed_app = typer.Typer(no_args_is_help=True, help="Emulate a cluster on this host (namespaces, tc, cgroups).")


@testbed_app.command("up")
def up(cluster: str = typer.Argument("edge-fleet", help="A built-in cluster name or a cluster YAML file."),
       as_json: bool = JsonOption) -> None:
    """Create one network namespace per device, shaped links and media, and CPU quotas."""
    from edgewise.hardware.cluster_io import load_cluster
    reason = can_emulate()
    if reason:
        raise EdgewiseError(reason.split(";")[0])
    layout = build_testbed(load_cluster(cluster))
    emit(asdict(layout), as_json, lambda: _render(layout))


@testbed_app.command("down")
def down(as_json: bool = JsonOption) -> None:
    """Remove every namespace and cgroup the testbed made (also leftovers of a crash)."""
    removed = netns.down()
    emit({"removed": removed}, as_json, lambda: console.print(f"removed {len(removed)} namespaces"))


@testbed_app.command("status")
def status(as_json: bool = JsonOption) -> None:
    """What the testbed currently holds."""
    state = json.loads(netns.STATE.read_text()) if netns.STATE.exists() else None
    found = netns.leftover_namespaces()
    emit({"up": state is not None, "namespaces": found, "state": state}, as_json,
         lambda: console.print(f"testbed {'up' if state else 'down'}; namespaces: {', '.join(found) or 'none'}"))


def _render(layout: Layout) -> None:
    t = Table(title=f"testbed for {layout.cluster}: time dilation {layout.dilation:.2f}x "
                    f"(one host core = {layout.host_core_flops / 1e9:.1f} GFLOP/s)")
    for col in ("device", "namespace", "address", "CPU quota (cores)", "cpus", "threads"):
        t.add_column(col)
    for s in layout.slots:
        t.add_row(s.node, s.netns, s.address, f"{s.cpu_quota_cores:.3f}", ",".join(map(str, s.cpus)), str(s.threads))
    console.print(t)
    console.print("link rates are divided and latencies multiplied by the dilation; run figures are reported in the cluster's own time")

