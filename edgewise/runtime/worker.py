"""One process of a pipelined run: receive a stage's inputs, compute, send the live set on.

Started the same way locally (by `runtime/launch.py`) and on real devices (by `torchrun`):
rank, world size and the rendezvous come from torchrun's environment variables. Sends run on
a thread of their own so a stage computes input k+1 while input k travels; a link's
propagation latency is added there, before the send (netem is not available to emulate it).
At the end every rank's timings (and the last stage's outputs) are gathered to rank 0,
which returns them for `runtime/measure.py`.

On `cuda` a process holds its stage's weights and activations on GPU LOCAL_RANK (modulo the
GPUs it sees) and talks NCCL instead of gloo. NCCL calls return once queued, so the times
are taken after waiting for the GPU: a stage begins when its input has arrived and ends when
its kernels have. NCCL ignores tags; messages still match because each pair of ranks sends
and receives in input order.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

from edgewise.cost.runtime import NOTE_BYTES, SEND_QUEUE
from edgewise.errors import EdgewiseError
from edgewise.graph.stages import run_stage
from edgewise.plan.schema import Plan
from edgewise.plan.window import note_admitting, sends_note
from edgewise.proc import computing_threads, exact_timers, rss_bytes, sleep_until, threads_cpu_s
from edgewise.runtime.clock import shared_origin
from edgewise.runtime.partition import split, to_device
from edgewise.runtime.topology import Seat, inputs_of, pairs, rank_for, seats
from edgewise.runtime.wire import pack, unpack, wire_specs

InputFn = Callable[[int], tuple]
DEVICES = ("cpu", "cuda")


@dataclass
class SeatRecord:
    """What one process saw, in seconds since the run's common origin (`runtime/clock.py`)."""
    rank: int
    stage: int
    device: str
    begin_s: dict[int, float] = field(default_factory=dict)     # input k: stage took it up
    compute_s: dict[int, float] = field(default_factory=dict)   # input k: compute time
    # CPU time (runtime/costs.py reads these): this thread's while computing input k (all of the
    # compute on one intra-op thread), and the whole process's when its turn for k was over
    compute_cpu_s: dict[int, float] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    end_s: dict[int, float] = field(default_factory=dict)       # input k: stage result ready
    sends: list[tuple[int, int, float, float]] = field(default_factory=list)   # (input, to rank, start, end)
    bytes_sent: int = 0
    param_bytes: int = 0
    peak_memory_bytes: int = 0   # GPU: peak allocated; CPU: weights plus resident growth while serving
    outputs: dict[int, list[torch.Tensor]] = field(default_factory=dict)


def rendezvous_from_env() -> tuple[int, int]:
    """torchrun's RANK / WORLD_SIZE (MASTER_ADDR / MASTER_PORT are read by init_process_group)."""
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise EdgewiseError(f"worker: {', '.join(missing)} not set; start workers with `edgewise run` "
                            f"or the torchrun lines of `edgewise run PLAN --print-launch`")
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise EdgewiseError("worker: RANK and WORLD_SIZE must be integers") from None


def check_device_name(device: str) -> None:
    if device not in DEVICES:
        raise EdgewiseError(f"--device {device!r}: use {' or '.join(DEVICES)}")


def check_device(device: str, processes_on_host: int) -> None:
    """One line, before any process starts, when `device` cannot serve this many processes here."""
    check_device_name(device)
    if device == "cpu":
        return
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0:
        raise EdgewiseError("--device cuda: this machine has no CUDA GPU that torch can use; run with --device cpu")
    if gpus < processes_on_host:   # NCCL refuses two ranks on one GPU
        raise EdgewiseError(f"--device cuda: the plan runs {processes_on_host} processes on this host but it has "
                            f"{gpus} GPU(s), and NCCL needs one GPU per process; use --device cpu or a plan "
                            f"over at most {gpus} devices")


def local_device(device: str) -> torch.device:
    """This process's device: the CPU, or GPU LOCAL_RANK modulo the GPUs this process sees."""
    check_device(device, 1)
    if device == "cpu":
        return torch.device("cpu")
    try:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise EdgewiseError("worker: LOCAL_RANK must be an integer") from None
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def serve(model: torch.nn.Module, example_inputs: tuple, plan: Plan, input_fn: InputFn,
          n_inputs: int, *, device: str = "cpu", latency_scale: float = 1.0, timeout_s: float = 120.0,
          cpu_quota_cores: float | None = None,
          on_step: Callable[[int], None] = lambda k: None) -> list[SeatRecord] | None:
    """Serve `n_inputs` through this rank's stage on `device` (cpu or cuda). Rank 0 gets every
    rank's records. With `cpu_quota_cores` (the testbed's emulated devices) each stage's compute
    takes at least its CPU time over that many cores (`EmulatedSpeed`)."""
    rank, world = rendezvous_from_env()
    table = seats(plan)
    if world != len(table):
        raise EdgewiseError(f"worker: the plan needs {len(table)} processes, WORLD_SIZE is {world}")
    seat = table[rank]
    dev = local_device(device)
    timeout = timedelta(seconds=timeout_s)
    exact_timers()   # before any thread starts, which inherits it: waits out compute and link latency
    # before gloo's and the sender's threads exist, so that only the computing ones are counted
    speed = EmulatedSpeed(cpu_quota_cores, computing_threads() if cpu_quota_cores else ())
    groups: dict[tuple[int, int], dist.ProcessGroup] = {}   # (src, dst) -> its group; none: the default
    if dev.type == "cuda":
        torch.cuda.set_device(dev)   # gather_object and barrier use the current device
        # device_id (torch >= 2.3; pyproject asks 2.11) binds the group to this GPU and
        # creates its communicator now rather than at the first collective
        dist.init_process_group("nccl", rank=rank, world_size=world, timeout=timeout, device_id=dev)
        # So bound, send/recv on a group use its one communicator, serialised with everything
        # else on it, and a middle stage would drive it from two threads at once (receiving on
        # this one, sending on the sender's). A group for each pair of ranks that talk keeps
        # transfers concurrent and each communicator on one thread. All ranks make every group.
        groups = {p: dist.new_group(list(p)) for p in pairs(plan)}
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timeout)
    try:
        return _serve(model, example_inputs, plan, seat, dev, groups, input_fn, n_inputs, latency_scale,
                      speed, on_step)
    finally:
        dist.destroy_process_group()


def _serve(model, example_inputs, plan, seat: Seat, dev: torch.device, groups: dict, input_fn, n_inputs,
           latency_scale, speed: EmulatedSpeed, on_step):
    staged = split(model, example_inputs, plan)
    specs = wire_specs(staged, example_inputs)
    st = staged.stages[seat.stage]
    params = {n: staged.params[n].to(dev) for n in st.param_names}   # drop the other stages' weights
    del staged.params, model
    if dev.type != "cpu":
        to_device(st, dev)
    rec = SeatRecord(rank=seat.rank, stage=seat.stage, device=seat.device,
                     param_bytes=sum(p.numel() * p.element_size() for p in params.values()))
    last = seat.stage == len(plan.stages) - 1
    devices = {s.rank: s.device for s in seats(plan)}

    def send(k: int, buf: torch.Tensor, dst: int) -> None:
        ch = plan.cluster.channel(seat.device, devices[dst])
        sender.put(k, buf, dst, groups.get((seat.rank, dst)), (ch.latency_s if ch else 0.0) * latency_scale)

    def wait_for_gpu() -> None:
        if dev.type == "cuda":   # this thread's stream only: sends on the sender's stream go on
            torch.cuda.current_stream(dev).synchronize()

    t0 = shared_origin(dev)   # also the start barrier
    sender = Sender(rec, dev, t0)
    base_rss = peak_rss = rss_bytes()
    def post_receive(k: int) -> tuple[torch.Tensor, dist.Work]:
        src = 0 if seat.stage == 0 else rank_for(plan, seat.stage - 1, k)
        buf = torch.empty(specs[seat.stage].nbytes, dtype=torch.uint8, device=dev)
        return buf, dist.irecv(buf, src=src, tag=k, group=groups.get((src, seat.rank)))

    work = list(_work_of(plan, seat, n_inputs))
    source = seat.stage == 0 and seat.rank == 0
    posted = {work[0]: post_receive(work[0])} if work and not source else {}
    window = Window(plan, dev, groups, n_inputs)
    with torch.inference_mode():
        for i, k in enumerate(work):
            if source:
                window.admit(k)
                env = {n: x.to(dev) for n, x in zip(specs[0].names, input_fn(k))}
                if (dst := rank_for(plan, 0, k)) != 0:   # the first device hands the other replicas their inputs
                    send(k, pack(specs[0], env), dst)
                    continue
            else:
                buf, pending = posted.pop(k)
                pending.wait()
                # Ask for the next input before computing this one: gloo sends nothing until the
                # receive is posted, so posting it late would put a round trip between inputs.
                if i + 1 < len(work):
                    posted[work[i + 1]] = post_receive(work[i + 1])
                env = unpack(specs[seat.stage], buf)
            wait_for_gpu()
            begin, cpu, started = time.perf_counter(), time.thread_time(), speed.start()
            live = run_stage(st, env, params)
            wait_for_gpu()
            speed.wait_out(begin, started)
            end = time.perf_counter()
            rec.begin_s[k], rec.end_s[k], rec.compute_s[k] = begin - t0, end - t0, end - begin
            rec.compute_cpu_s[k] = time.thread_time() - cpu
            peak_rss = max(peak_rss, rss_bytes())
            if last:
                rec.outputs[k] = [live[n].to("cpu", copy=True) for n in st.sends]
                if seat.rank != 0 and window.sends_note(k):
                    send(k, window.out_note, 0)
            else:
                dst = rank_for(plan, seat.stage + 1, k)
                send(k, pack(specs[seat.stage + 1], live), dst)
            on_step(k)
            rec.cpu_s[k] = time.process_time()
    window.close()
    sender.close()
    rec.peak_memory_bytes = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
                             else rec.param_bytes + max(0, peak_rss - base_rss))
    gathered: list = [None] * dist.get_world_size() if seat.rank == 0 else None
    dist.gather_object(rec, gathered, dst=0)
    return gathered


def _work_of(plan: Plan, seat: Seat, n_inputs: int) -> range:
    """Inputs this seat touches: its own share, and for the first device every input (it is the source)."""
    return range(n_inputs) if seat.rank == 0 else inputs_of(plan, seat, n_inputs)


class Window:
    """The first device's bound on inputs in flight (`Plan.max_in_flight`, plan/window.py): it
    takes input k only once the last stage's note says input k - max_in_flight is out.

    Rank 0 posts the receive for a note as it admits the input that carries it, so a note never
    waits for its receiver. Without a bound this does nothing.
    """

    def __init__(self, plan: Plan, dev: torch.device, groups: dict, n_inputs: int):
        self.plan, self.dev, self.groups, self.n = plan, dev, groups, n_inputs
        self.out_note = torch.ones(NOTE_BYTES, dtype=torch.uint8, device=dev)
        self.pending: dict[int, tuple[torch.Tensor, dist.Work]] = {}

    def sends_note(self, k: int) -> bool:
        return sends_note(self.plan, k, self.n)

    def admit(self, k: int) -> None:
        if (note := note_admitting(self.plan, k, self.n)) is not None and note in self.pending:
            self.pending.pop(note)[1].wait()
        if self.sends_note(k) and (src := self._last_rank(k)) != 0:   # rank 0's own are out in order
            buf = torch.empty(NOTE_BYTES, dtype=torch.uint8, device=self.dev)
            self.pending[k] = buf, dist.irecv(buf, src=src, tag=k, group=self.groups.get((src, 0)))

    def close(self) -> None:
        for _, w in self.pending.values():
            w.wait()
        self.pending.clear()

    def _last_rank(self, k: int) -> int:
        return rank_for(self.plan, len(self.plan.stages) - 1, k)


@dataclass(frozen=True)
class EmulatedSpeed:
    """A device emulated as `cpu_quota_cores` of this host's cores (the testbed's CPU quota)
    computes for at least its CPU time over the quota.

    The quota alone is enforced per period (5 ms and more): within one, a process runs at the
    host's full speed until the quota is spent, so a stage shorter than a period finished in
    one burst, several times sooner than the device would (mlp on an emulated Pi: 0.4 ms for
    1.6 ms of the Pi's time), and pipelined latencies came out short. Waiting out the rest of a
    compute span keeps each input to the device's speed; the quota still bounds the average.
    The CPU counted is that of the threads that compute: this one and, with several intra-op
    threads, their pool (`computing_threads`). The sender's and gloo's threads run meanwhile and
    their work is not the stage's (the profiler, alone in its process, counts the process's):
    the process's CPU would count a device's receives, which the simulator charges apart, as
    compute as well.
    """
    cpu_quota_cores: float | None = None
    threads: tuple[int, ...] = ()     # native ids of the computing threads; none: just this one

    def start(self) -> float:
        return self._cpu() if self.cpu_quota_cores else 0.0

    def wait_out(self, began: float, started_cpu: float) -> None:
        if self.cpu_quota_cores:
            sleep_until(began + (self._cpu() - started_cpu) / self.cpu_quota_cores)

    def _cpu(self) -> float:
        if not self.threads:
            return time.thread_time()
        return sum(threads_cpu_s(self.threads))


class Sender:
    """Sends in order on its own thread, each message no earlier than its link's latency after it was ready.

    On a GPU the sends go on a stream of their own: on the compute stream, NCCL would wait for
    the next input's kernels and they for the send, and compute and transfer would not overlap.
    The send stream waits for an event recorded where the buffer was packed, and the thread
    waits for each send to finish, so a buffer is never freed (and reused by the caching
    allocator) while NCCL still reads it.
    """

    def __init__(self, rec: SeatRecord, dev: torch.device, t0: float):
        self.rec, self.t0 = rec, t0
        self.dev = dev
        self.q: queue.Queue = queue.Queue(maxsize=SEND_QUEUE)   # bounds memory if the next stage is slow
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, k: int, buf: torch.Tensor, dst: int, group: dist.ProcessGroup | None, latency_s: float) -> None:
        if self.error:
            raise self.error
        packed = None
        if buf.is_cuda:
            packed = torch.cuda.Event()
            packed.record()   # on the compute stream, after the kernels that packed `buf`
        self.q.put((k, buf, packed, dst, group, time.perf_counter() + latency_s))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error:
            raise self.error

    def _run(self) -> None:
        try:
            stream = None
            if self.dev.type == "cuda":
                torch.cuda.set_device(self.dev)   # the current GPU is per thread
                stream = torch.cuda.Stream(self.dev)
            while (item := self.q.get()) is not None:
                k, buf, packed, dst, group, due = item
                sleep_until(due)
                start = time.perf_counter()
                if stream is None:
                    dist.send(buf, dst=dst, tag=k, group=group)
                else:
                    with torch.cuda.stream(stream):
                        stream.wait_event(packed)
                        dist.send(buf, dst=dst, tag=k, group=group)
                    stream.synchronize()
                self.rec.sends.append((k, dst, start - self.t0, time.perf_counter() - self.t0))
                self.rec.bytes_sent += buf.numel()
        except BaseException as e:  # surfaced to the main thread at its next put/close
            self.error = e
