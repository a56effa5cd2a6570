"""`edgewise offload MODEL`: generate with decoder layers streamed from host memory or disk."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit
from edgewise.offload.models import SHAPES
from edgewise.offload.session import OffloadRequest, run_offload


def offload(
    model: str = typer.Argument(..., help=f"One of {', '.join(SHAPES)} (random weights) or a local checkpoint folder."),
    gpu_memory: str = typer.Option("8GiB", "--gpu-memory", help="GPU memory the engine may use, e.g. 8GiB."),
    sparsity: float = typer.Option(0.0, "--sparsity", help="Prune to this fraction of zeros and send bitmaps (0 = dense)."),
    prompt: str = typer.Option("The edge is where the data is", "--prompt"),
    layers: Optional[int] = typer.Option(None, "--layers", help="Keep only the first N decoder layers (random shapes)."),
    new_tokens: int = typer.Option(32, "--new-tokens"),
    storage: str = typer.Option("host", "--storage", help="host (pinned memory) or disk (memory-mapped files)."),
    disk_dir: Optional[Path] = typer.Option(None, "--disk-dir", help="Folder for --storage disk (default: a temp dir)."),
    balance: str = typer.Option("row", "--balance", help="Pruning balance: row or global."),
    device: str = typer.Option("auto", "--device", help="auto, cuda or cpu."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
    as_json: bool = JsonOption,
) -> None:
    """Greedy generation with offloaded layers; prints tokens/s, GB/s and the fraction of the PCIe bound."""
    report = run_offload(OffloadRequest(model=model, gpu_memory=gpu_memory, sparsity=sparsity, prompt=prompt,
                                        layers=layers, new_tokens=new_tokens, storage=storage, disk_dir=disk_dir,
                                        balance=balance, device=device, seed=seed))
    emit(report.to_dict(), as_json, lambda: _render(report))


def _render(r) -> None:
    table = Table(title=f"{r.model} on {r.device} ({r.data}): {r.streamed_layers} of {r.layers} layers streamed "
                        f"from {r.storage}, {r.codec}" + (f" at sparsity {r.sparsity}" if r.sparsity else ""))
    table.add_column("figure")
    table.add_column("value", justify="right")
    frac = f"{r.frac_of_pinned:.1%} of {r.pinned_h2d_GBps:.1f} GB/s pinned" if r.frac_of_pinned else "n/a (no GPU)"
    for name, value in (("tokens/s", f"{r.tokens_per_s:.3f}"), ("s/token", f"{r.s_per_token:.4f}"),
                        ("bytes sent per token", f"{r.wire_bytes_per_token / 1e9:.3f} GB"),
                        ("link GB/s", f"{r.wire_GBps:.2f}"), ("effective (dense) GB/s", f"{r.effective_GBps:.2f}"),
                        ("fraction of PCIe bound", frac), ("pinned host bytes", f"{r.pinned_bytes / 1e9:.3f} GB"),
                        ("peak GPU memory", f"{r.peak_gpu_bytes / 1e9:.3f} GB" if r.peak_gpu_bytes else "n/a"),
                        ("host RSS", f"{r.host_rss_bytes / 1e9:.3f} GB")):
        table.add_row(name, value)
    console.print(table)
    console.print("generated:", r.text if r.text is not None else " ".join(map(str, r.generated)))
