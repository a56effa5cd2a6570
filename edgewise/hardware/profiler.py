"""Measure the machine this runs on: microbenchmarks and the time of each op of a model.

Microbenchmarks time matmuls and convolutions per dtype (compute throughput), a large tensor
copy (memory bandwidth) and a one-element add (the fixed cost of launching any op). Per-op
timing exports the model with torch.export and runs its graph several times through a
torch.fx.Interpreter that times each op of the model's OpGraph in its place, keeping the median; FLOPs and bytes
are the OpGraph's (graph/trace.py), so a row describes exactly the op the planner costs. Each
timing becomes a `Measurement` for the profile database; nothing here writes files.
"""
from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.fx
from torch.utils._pytree import tree_leaves

from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.graph.stages import export_module, run_stage, split_graph
from edgewise.hardware.profile_db import Measurement, Run
from edgewise.proc import threads_cpu_s

# Matmul sizes (n for n x n @ n x n) and copy sizes per mode: --quick finishes in seconds on a
# small CPU; the full sweep covers the sizes where throughput saturates on CPUs and on GPUs.
_MATMUL_N = {"quick": (128, 256), "cpu": (128, 256, 512, 1024, 2048), "gpu": (512, 1024, 2048, 4096, 8192)}
_CONV = {"quick": ((1, 32, 28, 28),), "cpu": ((1, 64, 56, 56), (8, 64, 56, 56)),
         "gpu": ((8, 64, 56, 56), (32, 128, 56, 56))}            # (batch, channels, height, width), 3x3
_COPY_BYTES = {"quick": 8 << 20, "cpu": 256 << 20, "gpu": 2 << 30}
_DTYPES = {"cpu": ("float32", "bfloat16"), "gpu": ("float32", "float16", "bfloat16")}


@dataclass(frozen=True)
class Case:
    """One microbenchmark: what it measures and how to build the call to time."""
    kind: str
    op_class: str
    dtype: str
    shape: tuple[tuple[int, ...], ...]
    flops: float
    bytes: float
    build: Callable[[torch.device], Callable[[], Any]]

    @property
    def label(self) -> str:
        return f"{self.kind} {self.dtype} {'x'.join(map(str, self.shape[0]))}"


def torch_device(name: str) -> torch.device:
    """'cpu' or 'cuda' (or 'cuda:N'), checked against what this machine has."""
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise EdgewiseError(f"--device {name!r}: not a torch device; use cpu or cuda") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EdgewiseError(f"--device {name!r}: CUDA is not available on this machine; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise EdgewiseError(f"--device {name!r}: edgewise profiles cpu or cuda devices")
    return dev


def describe(dev: torch.device, command: str = "") -> Run:
    """The run record for profiling `dev` here: label, what the device is, its memory."""
    software = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version()}
    if dev.type == "cuda":
        # PyTorch runs float32 convolutions in TF32 by default (cudnn.allow_tf32), so "float32"
        # conv throughput can exceed the FP32 peak; the flags say which rates were measured.
        software |= {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                     "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
        props = torch.cuda.get_device_properties(dev)
        return Run(device="local-cuda", device_kind="gpu", device_model=props.name, memory_bytes=props.total_memory,
                   host=socket.gethostname(), command=command, software=software)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    model = f"{_cpu_name()}, {torch.get_num_threads()} threads"
    return Run(device="local", device_kind="cpu", device_model=model, memory_bytes=memory,
               host=socket.gethostname(), command=command, software=software)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def microbenchmark_cases(dev: torch.device, quick: bool = False) -> list[Case]:
    """The sweep to run on `dev`: matmul and conv per dtype, a copy, the per-op overhead."""
    family = "gpu" if dev.type == "cuda" else "cpu"
    mode = "quick" if quick else family
    cases = []
    for dtype in _DTYPES[family]:
        dt = getattr(torch, dtype)
        size = torch.tensor([], dtype=dt).element_size()
        for n in _MATMUL_N[mode]:
            cases.append(Case("matmul", "matmul", dtype, ((n, n), (n, n)), 2.0 * n ** 3, 3.0 * n * n * size,
                              _matmul(n, dt)))
        for (b, c, h, w) in _CONV[mode]:
            flops = 2.0 * b * c * h * w * c * 9
            nbytes = (2 * b * c * h * w + c * c * 9) * size
            cases.append(Case("conv", "conv", dtype, ((b, c, h, w), (c, c, 3, 3)), flops, nbytes, _conv(b, c, h, w, dt)))
    numel = _COPY_BYTES[mode] // 4
    cases.append(Case("memory", "memory", "float32", ((numel,),), 0.0, 2.0 * numel * 4, _copy(numel)))
    cases.append(Case("overhead", "other", "float32", ((1,), (1,)), 0.0, 12.0, _tiny_add()))
    return cases


def _matmul(n: int, dtype: torch.dtype) -> Callable[[torch.device], Callable[[], Any]]:
    def build(dev: torch.device) -> Callable[[], Any]:
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        return lambda: torch.mm(a, b)
    return build


def _conv(b: int, c: int, h: int, w: int, dtype: torch.dtype) -> Callable[[torch.device], Callable[[], Any]]:
    def build(dev: torch.device) -> Callable[[], Any]:
        x = torch.randn(b, c, h, w, device=dev, dtype=dtype)
        k = torch.randn(c, c, 3, 3, device=dev, dtype=dtype)
        return lambda: torch.nn.functional.conv2d(x, k, padding=1)
    return build


def _copy(numel: int) -> Callable[[torch.device], Callable[[], Any]]:
    def build(dev: torch.device) -> Callable[[], Any]:
        src, dst = torch.randn(numel, device=dev), torch.empty(numel, device=dev)
        return lambda: dst.copy_(src)
    return build


def _tiny_add() -> Callable[[torch.device], Callable[[], Any]]:
    def build(dev: torch.device) -> Callable[[], Any]:
        a, b = torch.ones(1, device=dev), torch.ones(1, device=dev)
        return lambda: torch.add(a, b)
    return build


@dataclass(frozen=True)
class Clock:
    """What a measurement's seconds mean.

    Wall time by default. Inside a cgroup CPU quota (the testbed's emulated devices) wall time
    is jagged: a call runs at the host's full speed until the period's quota is spent, then
    stalls. There the profiler reads CPU time instead and divides it by the quota (in cores),
    which is the emulated device's time without the periods' jitter, but takes no less than the
    busiest thread's CPU time: one thread cannot use more than one core, so an op that runs on
    one thread of a several-core quota takes its own CPU time (an emulated Pi of four cores
    profiled mobilenet_v2 at 10.3 ms a pass, and its runs took 23.7). With `threads` (several intra-op
    threads: proc.computing_threads) it reads each one's CPU time, else the process's.
    """
    cpu_quota_cores: float | None = None
    threads: tuple[int, ...] = ()

    def now(self) -> tuple[float, ...]:
        if not self.cpu_quota_cores:
            return (time.perf_counter(),)
        return threads_cpu_s(self.threads) if self.threads else (time.process_time(),)

    def since(self, start: tuple[float, ...]) -> float:
        """This clock's seconds from `start` (an earlier `now()`) until now."""
        spent = [b - a for a, b in zip(start, self.now())]
        if not self.cpu_quota_cores:
            return spent[0]
        return max(sum(spent) / self.cpu_quota_cores, max(spent))

    def seconds(self, cpu_s: float) -> float:
        """The seconds that `cpu_s` of one thread's CPU time take under this clock's quota."""
        return max(cpu_s / self.cpu_quota_cores, cpu_s) if self.cpu_quota_cores else cpu_s


WALL = Clock()
# A model's whole forward is timed over at least this much wall time: five passes of a small
# model fit in a few ms, which one burst of the host's other work can cover (mlp on an emulated
# Pi of pi-fleet profiled at 1.85 ms a pass where its profiles in the other clusters read 1.28
# and 1.31, and its runs took 1.44), and that figure sets the sum of its ops' rows.
FORWARD_SPAN_S = 0.5
MAX_CALLS = 400


def median_time_s(call: Callable[[], Any], dev: torch.device, repeats: int, warmup: int = 1,
                  clock: Clock = WALL, span_s: float = 0.0) -> float:
    """Median time of `call` over `repeats` calls, or more until they span `span_s` of wall time
    (at most MAX_CALLS), after `warmup` untimed calls (GPU-synchronised)."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times = []
    began = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - began < span_s and len(times) < MAX_CALLS):
        t0 = clock.now()
        call()
        sync()
        times.append(clock.since(t0))
    return statistics.median(times)


def run_case(case: Case, dev: torch.device, repeats: int, clock: Clock = WALL) -> Measurement:
    with torch.no_grad():
        t = median_time_s(case.build(dev), dev, repeats, clock=clock)
    return Measurement(kind=case.kind, op_class=case.op_class, dtype=case.dtype, time_s=t, flops=case.flops,
                       bytes=case.bytes, shape=case.shape, repeats=repeats)


def export_for_timing(model: torch.nn.Module, example_inputs: tuple, dev: torch.device) -> tuple[torch.fx.GraphModule, tuple]:
    """The model's exported graph (node names as in OpGraph and the runtime) and its inputs, on `dev`."""
    model = model.to(dev).eval()
    inputs = tuple(x.to(dev) if isinstance(x, torch.Tensor) else x for x in example_inputs)
    try:
        return export_module(model, inputs), inputs
    except EdgewiseError as e:
        raise EdgewiseError(f"profile: {e} (so ops cannot be timed)") from e


class _OpTimer(torch.fx.Interpreter):
    """Runs the whole graph; each op of the OpGraph is timed once per pass, in its place.

    Timing ops in sequence, as the runtime runs them, keeps each op's cache state real (an op
    repeated in a warm loop finds its inputs and weights in cache and undercounts).
    """

    def __init__(self, gm: torch.fx.GraphModule, names: Iterable[str], dev: torch.device, clock: Clock):
        super().__init__(gm)
        self.names = set(names)
        self.dev, self.clock = dev, clock
        self.sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        self.times: dict[str, list[float]] = {name: [] for name in self.names}
        self.io: dict[str, tuple[list[torch.Tensor], list]] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        if n.op != "call_function" or n.name not in self.names:
            return super().run_node(n)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        self.sync()
        t0 = self.clock.now()
        out = n.target(*args, **kwargs)
        self.sync()
        self.times[n.name].append(self.clock.since(t0))
        if n.name not in self.io:
            self.io[n.name] = ([x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)],
                               tree_leaves(out))
        return out


def _op_medians(gm: torch.fx.GraphModule, inputs: tuple, names: Iterable[str], dev: torch.device, clock: Clock,
                repeats: int) -> tuple[dict[str, float], _OpTimer]:
    """Each named op's median time over `repeats` passes of the whole graph, after a warm-up
    pass in which allocator and caches settle; and the timer, which kept each op's tensors."""
    timer = _OpTimer(gm, names, dev, clock)
    with torch.no_grad():
        for done in range(repeats + 1):
            timer.run(*inputs)
            if done == 0:
                timer.times = {name: [] for name in timer.names}
    return {name: statistics.median(ts) for name, ts in timer.times.items()}, timer


def op_medians_s(gm: torch.fx.GraphModule, inputs: tuple, dev: torch.device, repeats: int = 5,
                 clock: Clock = WALL) -> dict[str, float]:
    """Each op's (call_function node's) median time over `repeats` passes, by node name: the
    op names of the OpGraph traced from the same model."""
    names = [n.name for n in gm.graph.nodes if n.op == "call_function"]
    return _op_medians(gm, inputs, names, dev, clock, repeats)[0]


def time_ops(gm: torch.fx.GraphModule, inputs: tuple, graph: OpGraph, dev: torch.device,
             classify: Callable[[str], str], repeats: int = 5,
             on_op: Callable[[str], None] | None = None, clock: Clock = WALL) -> list[Measurement]:
    """One row per op of `graph` (traced from the same model), in graph order; `on_op(name)` after each.

    The graph runs `repeats` times after a warm-up pass and each op keeps its median. The
    forward is timed as well, as a worker runs a one-stage plan (graph/stages.py), and what it
    spends beyond the ops (the graph's Python between them, which the runtime pays too) is
    shared out evenly over the ops, so the rows add up to the forward's time. FLOPs, bytes and
    kind come from the OpGraph, so the rows describe exactly the ops the planner costs. `classify` maps an op kind to its cost class (cost.roofline.op_class,
    passed in because the cost layer sits below this one).
    """
    if graph.level != "op":
        raise EdgewiseError(f"profile: {graph.model or 'the model'} traced only at module level; "
                            f"per-op timing needs an op-level (torch.export) graph")
    missing = set(graph.index) - {n.name for n in gm.graph.nodes}
    if missing:
        raise EdgewiseError(f"profile: ops {sorted(missing)[:3]} of the OpGraph are not in the exported graph")
    medians, timer = _op_medians(gm, inputs, [op.name for op in graph.ops], dev, clock, repeats)
    with torch.no_grad():
        whole = split_graph(gm, gm, lambda node: 0)
        env = dict(zip(whole.inputs, inputs))
        forward_s = median_time_s(lambda: run_stage(whole.stages[0], env, whole.params), dev, repeats,
                                  clock=clock, span_s=FORWARD_SPAN_S)
    glue = (forward_s - sum(medians.values())) / max(1, len(medians))
    if glue < 0:    # timer overhead made the ops look slower than the whole: scale them down instead
        scale, glue = forward_s / sum(medians.values()), 0.0
    else:
        scale = 1.0
    rows = []
    for op in graph.ops:
        tensors_in, outs = timer.io[op.name]
        floating = [x for x in tensors_in + outs if isinstance(x, torch.Tensor) and x.is_floating_point()]
        rows.append(Measurement(
            kind="op", op_class=classify(op.kind),
            dtype=str(floating[0].dtype).removeprefix("torch.") if floating else "",
            time_s=medians[op.name] * scale + glue, flops=float(op.flops), bytes=float(op.bytes_moved),
            shape=tuple(tuple(x.shape) for x in tensors_in), repeats=repeats, model=graph.model,
            op_name=op.name, op_kind=op.kind))
        if on_op:
            on_op(op.name)
    return rows


def profile_device(dev: torch.device, classify: Callable[[str], str], quick: bool = False, repeats: int = 10,
                   model: tuple[torch.nn.Module, tuple, OpGraph] | None = None, command: str = "",
                   progress: Callable[[str, int, int], None] | None = None,
                   clock: Clock = WALL) -> tuple[Run, list[Measurement]]:
    """Everything `edgewise profile` measures on `dev`: the microbenchmark sweep, then each op of
    `model` (module, example inputs, its OpGraph) when given. `progress(phase, done, total)` after
    each step. Returns the run record and its rows, for `ProfileDB.record`."""
    report = progress or (lambda phase, done, total: None)
    exported = export_for_timing(model[0], model[1], dev) if model is not None else None  # fail before measuring
    run = describe(dev, command)
    cases = microbenchmark_cases(dev, quick)
    rows = []
    for i, case in enumerate(cases):
        rows.append(run_case(case, dev, repeats, clock))
        report(f"microbenchmarks on {run.device}", i + 1, len(cases))
    if model is not None and exported is not None:
        graph = model[2]
        gm, inputs = exported
        done = iter(range(1, len(graph.ops) + 1))
        rows += time_ops(gm, inputs, graph, dev, classify, repeats,
                         on_op=lambda _: report(f"ops of {graph.model}", next(done), len(graph.ops)),
                         clock=clock)
    return run, rows
