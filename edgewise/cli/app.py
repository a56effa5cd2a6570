"""The `edgewise` command. Thin: each module parses, calls the library, prints with rich."""
from __future__ import annotations

import signal
import sys

import typer

from edgewise.errors import EdgewiseError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Plan, simulate and run deep learning on fleets of small devices.")


def _wire() -> None:
    from edgewise.cli import (
        demo_cmd,
        hardware_cmd,
        inspect_cmd,
        offload_cmd,
        plan_cmd,
        run_cmd,
        testbed_cmd,
    )
    app.command("inspect")(inspect_cmd.inspect)
    app.command("devices")(hardware_cmd.devices)
    app.command("clusters")(hardware_cmd.clusters)
    app.command("profile")(hardware_cmd.profile)
    app.command("plan")(plan_cmd.plan)
    app.command("simulate")(plan_cmd.simulate)
    app.command("run")(run_cmd.run)
    app.command("worker")(run_cmd.worker)
    app.add_typer(testbed_cmd.testbed_app, name="testbed")
    app.command("demo")(demo_cmd.demo)
    app.command("offload")(offload_cmd.offload)


def _interrupted(signum, frame) -> None:
    # click would turn Ctrl-C into a bare exit 130; say it in one line, then unwind so that every
    # `finally` (workers, testbed namespaces) runs
    print("error: interrupted; stopping everything this command started", file=sys.stderr)
    raise KeyboardInterrupt


def main() -> None:
    _wire()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupted)
    try:
        app()
    except EdgewiseError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
