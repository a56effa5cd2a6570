"""What the runtime itself costs a device per input: making an input, sending and receiving a message.

A stage's compute is only part of a device's work in a pipelined run: the first device makes
(or loads) every input, and each message is packed, handed to the sender thread and pushed
through gloo, then received and unpacked at the other end, with the worker's loop around it.
Those costs are CPU work on the device, and on a small device they can outweigh a fast
model's compute. They are measured by running the runtime itself: two processes serve a
stream through the worker's own loop (`worker.serve`) on a two-op model, `(x + 1).sum()` cut
after the add, so the one message per input is x-sized. Each message size is served twice,
the measuring process first as the source (making inputs and sending) and then as the sink
(receiving). What it spends per input beyond its stage's compute (process CPU time: its
sender thread's and gloo's included) is the runtime's cost; making an input is also timed on
its own, which splits the source's cost into input and send. Last, the measuring process
serves a stream alone, making and finishing every input (the smallest size): what it spends
beyond compute and making is the loop's own work, which a send or a receive pays elsewhere
but a device that neither sends nor receives pays on its own. The rows go to the profile
database as kind "runtime", op_class "input", "send", "recv" or "loop", bytes = message size,
time per message; `cost/runtime.py` fits a fixed plus a per-byte cost to them. One more probe,
`measure_wake`, runs a given model as the receiving side: what a step of it costs beyond the
same step back to back is the step's wake-up cost (op_class "wake", for that model), and what
its process spends per input beyond the step is what a message costs it in the model's stream
(op_class "received"); the measuring side then serves the model alone, and what an input costs
beyond making it and the step back to back is its cost of serving alone (op_class "alone").

CPU time over the process's CPU quota (one core outside the testbed) is what is counted:
waiting for the peer is not the device's work, and the peer's own CPU is its own. Inside the
testbed (`testbed/profiling.py`) the measuring side runs in the emulated device and the peer in
another, so throttling and the emulated link are in the figures.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, Iterator

import torch
from torch import nn

from edgewise.errors import EdgewiseError
from edgewise.graph.stages import StageProgram, export_module, export_program, run_stage
from edgewise.hardware.catalogue import builtin_devices
from edgewise.hardware.cluster import Cluster, Node
from edgewise.hardware.profile_db import Measurement
from edgewise.hardware.profiler import Clock
from edgewise.plan.schema import Plan, Stage
from edgewise.proc import steady_allocations
from edgewise.runtime.inputs import input_source
from edgewise.runtime.launch import free_port
from edgewise.runtime.partition import split
from edgewise.runtime.worker import SeatRecord, serve

SIZES = (4 << 10, 256 << 10)       # bytes per message: one where the fixed cost rules, one for the per-byte cost
MESSAGES = {4 << 10: 150, 256 << 10: 30}   # per size: the big one crosses slow emulated links too
PEER_TIMEOUT_S = 60.0
SETTLE = 0.2            # the first fifth of a stream (connections opening, caches) is left out
# Each row is the median over this many fresh pairs of processes: one pair's figures can be off
# by half or more (an emulated Pi's 4 KiB receive: 0.85, 1.59 and 1.08 ms in three pairs in a
# row, its 256 KiB send 2.6, 3.3 and 1.8 ms), and a stream's own inputs vary far less than that.
ROUNDS = 3


@dataclass(frozen=True)
class Ends:
    """Where the two sides run: an argv wrapper for each (the testbed's namespaces) and their addresses."""
    measurer: Callable[[list[str]], list[str]] = lambda argv: argv
    peer: Callable[[list[str]], list[str]] = lambda argv: argv
    measurer_address: str = "127.0.0.1"
    peer_address: str = "127.0.0.1"
    ifname: str = "lo"


def measure(messages: dict[int, int] | None = None, sizes: tuple[int, ...] = SIZES, quota_cores: float = 1.0,
            ends: Ends = Ends(), progress: Callable[[int, int], None] = lambda done, total: None,
            rounds: int = ROUNDS) -> list[Measurement]:
    """Rows of input, send and receive costs per message size, times in CPU seconds over
    `quota_cores` of the measuring side: each the median over `rounds` pairs of fresh processes
    started through `ends`.

    A side that dies or never answers is a one-line EdgewiseError within about PEER_TIMEOUT_S
    (per round), and neither outlives this call.
    """
    per_round = rows_per_pair(sizes)
    found: dict[tuple[str, float], list[Measurement]] = {}
    for r in range(rounds):
        for m in _measure_pair(messages, sizes, quota_cores, ends,
                               lambda done, total: progress(r * per_round + done, rounds * per_round)):
            found.setdefault((m.op_class, m.bytes), []).append(m)
    return [replace(ms[0], time_s=statistics.median(m.time_s for m in ms), repeats=sum(m.repeats for m in ms))
            for ms in found.values()]


def rows_per_pair(sizes: tuple[int, ...]) -> int:
    """Input, send and receive at every size, and the loop once."""
    return 3 * len(sizes) + 1


def _measure_pair(messages: dict[int, int] | None, sizes: tuple[int, ...], quota_cores: float, ends: Ends,
                  progress: Callable[[int, int], None]) -> list[Measurement]:
    """One round of `measure`: its rows from one pair of processes."""
    counts = {size: (messages or MESSAGES).get(size, 30) for size in sizes}
    setup = {"sizes": list(sizes), "counts": {str(k): v for k, v in counts.items()},
             "ports": _ports(ends, 2 * len(sizes) + 1),      # the last: alone
             "quota": quota_cores}
    rows: list[Measurement] = []

    def take(line: str) -> None:
        if line.startswith("row "):
            fields = json.loads(line[4:])
            rows.append(Measurement(**{**fields, "shape": tuple(tuple(x) for x in fields["shape"])}))
            progress(len(rows), rows_per_pair(sizes))
    _pair("_side", setup, ends, take, lambda: len(rows) == rows_per_pair(sizes), "the runtime's costs")
    return rows


def _ports(ends: Ends, n: int) -> list[int]:
    return [free_port() for _ in range(n)] if ends.measurer_address == ends.peer_address else [29600 + i for i in range(n)]


def _pair(entry: str, setup: dict, ends: Ends, take: Callable[[str], None], complete: Callable[[], bool],
          what: str) -> None:
    """Run `entry(role, setup)` of this module as the measurer (role 0) and the peer (role 1),
    each started through `ends`, handing every line they print to `take`; a one-line
    EdgewiseError when either fails or `complete()` is false at the end. Neither outlives this."""
    setup = {**setup, "addresses": [ends.measurer_address, ends.peer_address], "ifname": ends.ifname,
             "timeout_s": PEER_TIMEOUT_S}

    def start(role: int, wrap: Callable[[list[str]], list[str]]) -> subprocess.Popen:
        code = f"from edgewise.runtime.costs import {entry}; {entry}({role}, {json.dumps(setup)!r})"
        return subprocess.Popen(wrap([sys.executable, "-c", code]), stdout=subprocess.PIPE, stderr=errors, text=True)

    errors = tempfile.TemporaryFile("w+")      # a file, not a pipe: nobody blocks on a full one
    procs = [start(0, ends.measurer), start(1, ends.peer)]
    try:
        for proc in procs:
            for line in proc.stdout:
                take(line)
        for proc in procs:
            proc.wait(timeout=PEER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    errors.seek(0)
    lines = [ln for ln in errors.read().splitlines() if ln.strip()]
    errors.close()
    codes = [p.returncode for p in procs]
    if any(codes) or not complete():
        raise EdgewiseError(f"profile: measuring {what} between two processes failed "
                            f"(exits {codes[0]} and {codes[1]}): {lines[-1] if lines else 'no output'}")


class _Probe(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1.0).sum()


def probe(nbytes: int, order: tuple[str, ...]) -> tuple[nn.Module, tuple, Plan]:
    """The two-op model for messages of `nbytes`, and its plan over the devices in `order`
    ("measurer", "peer"): cut after the add over two, whole on one."""
    model = _Probe()
    example = (torch.zeros(nbytes // 4),)
    cuts = [slice(0, 1), slice(1, None)] if len(order) == 2 else [slice(None)]
    return model, example, _probe_plan("runtime-costs probe", model, example, dict(zip(order, cuts)))


def _probe_plan(name: str, model: nn.Module, example: tuple, stages: dict[str, slice]) -> Plan:
    """A plan of `model` with one stage per device of `stages`, holding that slice of its ops."""
    names = [n.name for n in export_module(model, example).graph.nodes if n.op == "call_function"]
    device = next(iter(builtin_devices().values()))     # any: nothing here is costed
    cluster = Cluster(name="runtime-costs", nodes=[Node(name=d, device=device) for d in stages])
    return Plan(model=name, cluster=cluster, stages=[Stage(devices=[d], ops=names[cut]) for d, cut in stages.items()])


def _side(role: int, setup_json: str) -> None:
    """One process: 0 measures, 1 is the peer. Serves every stream of the setup in turn; after
    each, the side that was rank 0 (it gathers every record) prints the measurer's row."""
    setup = json.loads(setup_json)
    steady_allocations()    # as in a worker
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", setup["ifname"])
    clock = Clock(cpu_quota_cores=setup["quota"])
    streams = [(size, first) for size in setup["sizes"] for first in (True, False)]
    for (size, measurer_first), port in zip(streams, setup["ports"]):
        n = setup["counts"][str(size)]
        model, example, plan = probe(size, ("measurer", "peer") if measurer_first else ("peer", "measurer"))
        fn, _ = input_source(None, example)     # the inputs `edgewise run` makes when given a count
        making = 0.0
        if role == 0 and measurer_first:
            making = _input_cost(clock, fn, n)
            print("row " + _json(_row("input", size, making, n)), flush=True)
        rank = role if measurer_first else 1 - role
        os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_PORT=str(port),
                          MASTER_ADDR=setup["addresses"][0 if measurer_first else 1])
        records = serve(model, example, plan, fn, n, timeout_s=setup["timeout_s"])
        if records is not None:     # rank 0: the measurer's own record is among these
            mine = next(r for r in records if r.device == "measurer")
            # as the source the measurer also made the inputs: that share is the input row's
            spent = clock.seconds(_beyond_compute(mine)) - making
            print("row " + _json(_row("send" if measurer_first else "recv", size, max(0.0, spent), n)), flush=True)
    if role == 0:
        _serve_alone(setup, clock)


def _serve_alone(setup: dict, clock: Clock) -> None:
    """The measurer makes and finishes a stream of the smallest size by itself: its loop's row."""
    size = min(setup["sizes"])
    n = setup["counts"][str(size)]
    model, example, plan = probe(size, ("measurer",))
    fn, _ = input_source(None, example)
    making = _input_cost(clock, fn, n)
    os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_PORT=str(setup["ports"][-1]), MASTER_ADDR=setup["addresses"][0])
    (mine,) = serve(model, example, plan, fn, n, timeout_s=setup["timeout_s"])
    print("row " + _json(_row("loop", size, max(0.0, clock.seconds(_beyond_compute(mine)) - making), n)), flush=True)


def _input_cost(clock: Clock, fn: Callable[[int], tuple], n: int) -> float:
    samples = []
    for k in range(n):
        t0 = clock.now()
        fn(k)
        samples.append(clock.since(t0))
    return statistics.median(samples)


def _beyond_compute(rec: SeatRecord) -> float:
    """Process CPU time per input beyond the stage's compute, over the stream once it settled."""
    ks = _settled(rec)
    return _per_input_cpu(rec) - sum(rec.compute_cpu_s[k] for k in ks[1:]) / (len(ks) - 1)


def _per_input_cpu(rec: SeatRecord) -> float:
    """Process CPU time per input, over the stream once it settled."""
    ks = _settled(rec)
    return (rec.cpu_s[ks[-1]] - rec.cpu_s[ks[0]]) / (len(ks) - 1)


def _settled(rec: SeatRecord) -> list[int]:
    ks = sorted(rec.cpu_s)[int(len(rec.cpu_s) * SETTLE):]
    if len(ks) < 2:
        raise EdgewiseError("profile: too few messages to measure the runtime's costs")
    return ks


def _row(what: str, nbytes: int, time_s: float, messages: int) -> Measurement:
    return Measurement(kind="runtime", op_class=what, dtype="uint8", time_s=time_s, bytes=float(nbytes),
                       shape=((nbytes,),), repeats=messages)


def _json(m: Measurement) -> str:
    return json.dumps({**asdict(m), "shape": [list(x) for x in m.shape]})


# A stage's step in a pipelined worker costs more than the same step back to back: the worker
# is woken for each input by gloo's thread, and the runtime's own work in between (that
# thread's, the loop's, the network stack's) cools the caches the stage runs in. Measured on the
# 2-core VM: m5's last stage took 40 µs of CPU back to back, 68 after a sleep, 126 when another
# thread woke it, and 134 in a two-device run; the whole m5 181 back to back and 307 woken. A
# fixed cost per step rather than a share of each op: both halves of a split m5 paid most of it.
WAKE_INPUTS = 120


class _Woken(nn.Module):
    """`model` on its example inputs, held here, behind a one-element message from a peer: the
    measurer is woken by gloo for each input as in a pipelined run. The message is the smallest
    there is, so that the measurer sets the pace and nothing trickles in while it computes: the
    model's own input across an emulated 10 Mbit/s link kept waking gloo's thread in the middle
    of m5's step, which then measured 1.3 ms beyond its profile against 0.1 in runs."""

    def __init__(self, model: nn.Module, example: tuple):
        super().__init__()
        self.model = model
        for i, x in enumerate(example):
            self.register_buffer(f"input{i}", x.clone())
        self.n_inputs = len(example)

    def forward(self, token: torch.Tensor):
        token = token + 0       # the peer's op: the message is its result
        return self.model(*(getattr(self, f"input{i}") for i in range(self.n_inputs))), token


TOKEN = (torch.zeros(1),)


class _Stage(nn.Module):
    """One stage of a split model on its own: its weights held here, called with the values it
    receives in a run, in the order of its program's arguments."""

    def __init__(self, st: StageProgram, params: dict[str, torch.Tensor]):
        super().__init__()
        self.program = st.module
        self.held = [a for a in st.arg_names if a in st.param_names]
        for a in self.held:
            self.register_buffer(f"held_{a}", params[a])
        self.arg_names = st.arg_names

    def forward(self, *received: torch.Tensor):
        given = iter(received)
        return self.program(*(getattr(self, f"held_{a}") if a in self.held else next(given) for a in self.arg_names))


@contextmanager
def saved_stage_program(program: str, plan: Plan, stage: int) -> Iterator[str]:
    """Stage `stage` of `plan` over the model in `program` (a torch.export.save file), exported
    and saved with the values it receives from the earlier stages as its example inputs: for
    `measure_wake` to measure that stage as a worker runs it, to a file that lasts as long as
    the context."""
    loaded = torch.export.load(program)
    example = tuple(loaded.example_inputs[0])
    staged = split(loaded.module(), example, plan)
    env = dict(zip(staged.inputs, example))
    with torch.inference_mode():
        for st in staged.stages[:stage]:
            env = run_stage(st, env, staged.params)
    st = staged.stages[stage]
    received = tuple(env[a].clone() for a in st.arg_names if a not in st.param_names)
    exported = export_program(_Stage(st, staged.params), received)
    with tempfile.TemporaryDirectory(prefix="edgewise-") as folder:
        path = os.path.join(folder, "stage.pt2")
        torch.export.save(exported, path)
        yield path


def wake_probe(model: nn.Module, example: tuple) -> tuple[nn.Module, Plan]:
    """`model` on `example` behind an added op, and a plan that runs that op on "peer" and the
    model on "measurer"; the stream's inputs are TOKEN-shaped."""
    woken = _Woken(model, example)
    return woken, _probe_plan("wake probe", woken, TOKEN, {"peer": slice(0, 1), "measurer": slice(1, None)})


@dataclass(frozen=True)
class ModelCosts:
    """The runtime's costs that depend on the model, in CPU seconds over the quota."""
    wake_s: float    # a step, woken by a message for each input, beyond the same step back to back
    alone_s: float | None   # an input made and finished alone, beyond making it and the step back to back (None: not measured)
    received_s: float   # a one-element message taken in, in the model's stream, beyond the step's compute
    # How much a woken step's wall time varies from input to input (a robust standard deviation,
    # host seconds): a throttled device's step sometimes ends in one burst of its quota and
    # sometimes waits out a period's rest, and the host's other work comes and goes.
    spread_s: float


# Their names, as the profile database's "runtime" rows of a model call them.
MODEL_COSTS = tuple(f.name.removesuffix("_s") for f in fields(ModelCosts))


def measure_wake(program: str, quota_cores: float = 1.0, ends: Ends = Ends(), rounds: int = ROUNDS,
                 inputs: int = WAKE_INPUTS, alone: bool = True) -> ModelCosts:
    """What the model in `program` (a torch.export.save file of it, with its example inputs)
    costs the measuring side under `quota_cores` beyond its steps back to back: a step woken for
    each of `inputs` inputs from the peer, what taking in each of those messages costs it beyond
    the step, and, with `alone`, an input served alone (the whole model, inputs made as
    `edgewise run` makes them), and how much the woken step's wall time varies. Each the median
    over `rounds` pairs of fresh processes; never below zero. A stage's program
    (`saved_stage_program`) is measured without `alone`: no device serves a stage alone."""
    found: dict[str, list[float]] = {"wake": [], "alone": [], "received": [], "spread": []}
    wanted = {"woken", "received", "spread", "back_to_back"} | ({"alone"} if alone else set())
    for _ in range(rounds):
        figures: dict[str, float] = {}

        def take(line: str) -> None:
            if line.startswith("wake "):
                figures.update(json.loads(line[5:]))
        _pair("_wake_side", {"program": program, "inputs": inputs, "ports": _ports(ends, 2), "quota": quota_cores,
                             "alone": alone},
              ends, take, lambda: wanted <= figures.keys(), "what the model costs the runtime")
        found["wake"].append(figures["woken"] - figures["back_to_back"])
        for what in ("alone", "received", "spread"):
            if what in figures:
                found[what].append(figures[what])
    clock = Clock(cpu_quota_cores=quota_cores)

    def cpu(what: str) -> float | None:
        return clock.seconds(max(0.0, statistics.median(found[what]))) if found[what] else None
    return ModelCosts(wake_s=cpu("wake"), alone_s=cpu("alone"), received_s=cpu("received"),
                      spread_s=statistics.median(found["spread"]))     # wall time already


def _wake_side(role: int, setup_json: str) -> None:
    """One process of `measure_wake`: 0 measures (the second stage, rank 1), 1 is the peer (rank 0,
    the source, which gathers the records and prints the measurer's CPU per step woken and per
    message beyond it); the measurer prints its CPU per step back to back, over the same stage
    and input, and then serves the model alone."""
    setup = json.loads(setup_json)
    steady_allocations()    # as in a worker
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", setup["ifname"])
    program = torch.export.load(setup["program"])
    example = tuple(program.example_inputs[0])
    woken, plan = wake_probe(program.module(), example)
    fn, _ = input_source(None, TOKEN)
    os.environ.update(RANK=str(1 - role), WORLD_SIZE="2", MASTER_PORT=str(setup["ports"][0]),
                      MASTER_ADDR=setup["addresses"][1])
    records = serve(woken, TOKEN, plan, fn, setup["inputs"], timeout_s=setup["timeout_s"])
    if records is not None:
        mine = next(r for r in records if r.device == "measurer")
        ks = sorted(mine.compute_cpu_s)[int(len(mine.compute_cpu_s) * SETTLE):]
        print("wake " + json.dumps({"woken": statistics.median(mine.compute_cpu_s[k] for k in ks),
                                    "received": _beyond_compute(mine),
                                    "spread": robust_std([mine.compute_s[k] for k in ks])}), flush=True)
    else:
        print("wake " + json.dumps({"back_to_back": _back_to_back(woken, TOKEN, plan, setup["inputs"])}), flush=True)
        if setup["alone"]:
            print("wake " + json.dumps({"alone": _alone(program.module(), example, setup)}), flush=True)


def robust_std(xs: list[float]) -> float:
    """The standard deviation that the median absolute deviation implies for a normal spread:
    a step the host's other work held up for a whole period now and then moves it little."""
    mid = statistics.median(xs)
    return 1.4826 * statistics.median(abs(x - mid) for x in xs)


def _alone(model: nn.Module, example: tuple, setup: dict) -> float:
    """CPU per input of the whole model served alone through the worker's loop, paced to the
    quota as a testbed worker is (`EmulatedSpeed`), beyond making the input and the same step
    back to back."""
    plan = one_device_plan(model, example)
    fn, _ = input_source(None, example)      # the inputs `edgewise run` makes when given a count
    n = setup["inputs"]
    making = _input_cost(Clock(cpu_quota_cores=1.0), fn, n)      # CPU seconds
    os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_PORT=str(setup["ports"][1]),
                      MASTER_ADDR=setup["addresses"][0])
    (mine,) = serve(model, example, plan, fn, n, timeout_s=setup["timeout_s"], cpu_quota_cores=setup["quota"])
    return _per_input_cpu(mine) - making - _back_to_back(model, example, plan, n)


def one_device_plan(model: nn.Module, example: tuple) -> Plan:
    """The whole model on one device, "measurer"."""
    return _probe_plan("alone probe", model, example, {"measurer": slice(None)})


def _back_to_back(model: nn.Module, example: tuple, plan: Plan, n: int) -> float:
    """Thread CPU per step of the plan's last stage, run back to back on the input it gets in a run."""
    staged = split(model, example, plan)
    env = dict(zip(staged.inputs, example))
    samples = []
    with torch.inference_mode():
        for st in staged.stages[:-1]:
            env = run_stage(st, env, staged.params)
        for _ in range(n):
            t0 = time.thread_time()
            run_stage(staged.stages[-1], env, staged.params)
            samples.append(time.thread_time() - t0)
    return statistics.median(samples[int(n * SETTLE):])
