"""Offloaded decoding of a Llama-2-70B-shaped model: Accelerate (A) vs our streaming (B, C50, C70).

Random weights (the peer baseline's `build_model`, so every engine sees the same tensors), batch 1,
greedy, a fixed random 32-token prompt; decode steps timed after one warm-up generate. Measures in
one process: pinned / pageable host-to-GPU bandwidth, the bitmap decode kernel per 8192 x 28672
matrix (and the plain-torch decode for contrast), then for each configuration the s/token, the
bytes over the link, the fraction of the pinned bound, host RSS, pinned bytes, peak GPU memory, and
whether tokens and first-step logits equal the same (pruned) model run entirely on the GPU.
A torch.profiler trace of C50 shows whether decoding hides behind the copies.
Accelerate (A) runs in its own process first (`--accelerate-json`, the peer script's output).

    python3 .peers/accelerate_offload.py --layers 8 --new-tokens 32 --json > $OUT/a.json
    PYTHONPATH=. python3 benchmarks/offload_bench.py --accelerate-json $OUT/a.json --out $OUT
"""
from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import json
import os
import platform
import shutil
import sys
import time

import torch

sys.path.insert(0, ".peers")
from accelerate_offload import build_model  # noqa: E402  (the peer's weights, bit for bit)

from edgewise.codecs import bitmap  # noqa: E402
from edgewise.codecs.bitmap import _decode_torch, _int_view  # noqa: E402
from edgewise.codecs.prune import prune_  # noqa: E402
from edgewise.offload.engine import OffloadEngine, decoder_layers  # noqa: E402
from edgewise.offload.measure import greedy, h2d_GBps  # noqa: E402
from edgewise.offload.models import prune_decoder_  # noqa: E402
from edgewise.proc import rss_bytes  # noqa: E402


def kernel_figures(pinned_GBps: float) -> dict:
    """Decode time of one 8192 x 28672 fp16 matrix at 50% and 70% vs. its transfer time."""
    from triton.testing import do_bench
    out = {}
    for s in (0.5, 0.7):
        w = torch.randn(8192, 28672, dtype=torch.float16, device="cuda")
        prune_(w, s)
        enc = bitmap.encode(w)
        dst = torch.full_like(w, float("nan"))
        bitmap.decode(enc, out=dst)
        exact = torch.equal(dst.view(torch.int16), w.view(torch.int16))
        ms = do_bench(lambda: bitmap.decode(enc, out=dst), warmup=50, rep=300, return_mode="median")
        flat = _int_view(dst)
        torch_ms = do_bench(lambda: _decode_torch(flat, enc.bitmap, _int_view(enc.values)),
                            warmup=20, rep=200, return_mode="median")
        out[f"s{int(s * 100)}"] = dict(
            exact=exact, kernel_ms=ms, torch_ops_ms=torch_ms, wire_bytes=enc.nbytes, dense_bytes=enc.dense_nbytes,
            transfer_ms_at_pinned=enc.nbytes / pinned_GBps / 1e6,
            kernel_GBps_written=enc.dense_nbytes / ms / 1e6)
        del w, enc, dst, flat
        torch.cuda.empty_cache()
    return out


def trace_summary(path: str) -> dict:
    """From a Chrome trace: decode-kernel time, H2D copy time, and decode time not under a copy."""
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    copies = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                    if e.get("cat") == "gpu_memcpy" and "HtoD" in e.get("name", ""))
    decodes = [(e["ts"], e["ts"] + e["dur"]) for e in events
               if e.get("cat") == "kernel" and "_decode_kernel" in e.get("name", "")]
    kernels = [(e["ts"], e["ts"] + e["dur"]) for e in events
               if e.get("cat") == "kernel" and "_decode_kernel" not in e.get("name", "")]

    def covered(a, b, spans):  # length of [a, b) covered by the (sorted, non-overlapping) spans
        return sum(max(0.0, min(b, y) - max(a, x)) for x, y in spans)

    exposed = sum((b - a) - covered(a, b, copies) for a, b in decodes)
    t0 = min(a for a, _ in copies + decodes + kernels)
    t1 = max(b for _, b in copies + decodes + kernels)
    return dict(window_ms=(t1 - t0) / 1e3, h2d_copy_ms=sum(b - a for a, b in copies) / 1e3,
                decode_kernel_ms=sum(b - a for a, b in decodes) / 1e3, decode_kernels=len(decodes),
                decode_not_under_copy_ms=exposed / 1e3,
                other_kernels_ms=sum(b - a for a, b in kernels) / 1e3,
                link_busy_fraction=sum(b - a for a, b in copies) / (t1 - t0))


def logits_sha256(logits: torch.Tensor) -> str:
    """Hashed exactly as the peer script hashes its first-step logits."""
    return hashlib.sha256(logits.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def run_config(model, ids, name, codec, sparsity, storage, new_tokens, pinned_GBps, out_dir, profile):
    _, layers = decoder_layers(model)
    if sparsity > 0:  # prune on the GPU, weights back in host memory
        prune_decoder_(model, layers, sparsity, "row", "cuda")
    # Reference: the same (pruned) model entirely on the GPU.
    model.to("cuda")
    ref = greedy(model, ids, new_tokens)
    model.to("cpu")
    torch.cuda.empty_cache()
    rss_before = rss_bytes()
    t0 = time.perf_counter()
    engine = OffloadEngine(model, "cuda", codec=codec, storage=storage, resident_layers=0)  # disk: a temp dir
    setup_s = time.perf_counter() - t0
    greedy(model, ids, 2)  # warm-up: prefill + one step (Triton compiles here)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    gen = greedy(model, ids, new_tokens)
    st = engine.stats()
    res = dict(config=name, codec=codec, sparsity=sparsity, storage=storage, setup_s=setup_s,
               s_per_token=gen.s_per_token, s_per_token_median=gen.s_per_token_median,
               tokens_per_s=1 / gen.s_per_token, prefill_s=gen.prefill_s,
               wire_bytes_per_token=st.streamed_bytes_per_pass, dense_bytes_per_token=st.streamed_dense_bytes_per_pass,
               wire_GBps=st.streamed_bytes_per_pass / gen.s_per_token / 1e9,
               effective_GBps=st.streamed_dense_bytes_per_pass / gen.s_per_token / 1e9,
               frac_of_pinned=st.streamed_bytes_per_pass / gen.s_per_token / 1e9 / pinned_GBps,
               ideal_speedup_vs_dense=st.streamed_dense_bytes_per_pass / st.streamed_bytes_per_pass,
               same_tokens_as_gpu=gen.tokens == ref.tokens,
               same_logits_as_gpu=torch.equal(gen.first_logits, ref.first_logits),
               generated=gen.tokens, logits_sha256=logits_sha256(gen.first_logits), resident_layers=st.resident_layers, streamed_layers=st.streamed_layers,
               pinned_bytes=st.pinned_bytes, gpu_weight_bytes=st.gpu_weight_bytes,
               peak_gpu_bytes=torch.cuda.max_memory_allocated(),
               host_rss_bytes=rss_bytes(), host_rss_added_bytes=rss_bytes() - rss_before)
    if hasattr(torch.cuda, "host_memory_stats"):  # what the pinned caching allocator really holds
        res["host_allocator"] = {k: v for k, v in torch.cuda.host_memory_stats().items() if k.endswith(".current")}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof
        with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            greedy(model, ids, 3)
        path = os.path.join(out_dir, f"trace_{name}.json")
        p.export_chrome_trace(path)
        res["trace"] = trace_summary(path)
        with open(path, "rb") as f, gzip.open(path + ".gz", "wb") as g:
            shutil.copyfileobj(f, g)
        os.remove(path)
    engine.close()
    del engine
    gc.collect()
    torch.cuda.empty_cache()
    if hasattr(torch._C, "_host_emptyCache"):
        torch._C._host_emptyCache()
    print(json.dumps({k: v for k, v in res.items() if k != "generated"}), file=sys.stderr, flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--accelerate-json", help="the peer script's --json output (baseline A)")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    res = dict(bench="offload", device=torch.cuda.get_device_name(0), host=platform.node(),
               torch=torch.__version__, layers=a.layers, new_tokens=a.new_tokens, batch=1,
               data="random weights (peer build_model, seed 0), random 32-token prompt",
               command=" ".join(sys.argv))
    res["pinned_h2d_GBps"] = h2d_GBps(True)
    res["pageable_h2d_GBps"] = h2d_GBps(False)
    res["decode_kernel"] = kernel_figures(res["pinned_h2d_GBps"])
    print(json.dumps(res), file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    model, cfg = build_model(a.layers, 0.0, 0)
    res["build_s"] = time.perf_counter() - t0
    g = torch.Generator().manual_seed(1234)  # the peer's prompt
    ids = torch.randint(3, cfg.vocab_size, (1, a.prompt_len), generator=g).cuda()
    # C50-disk: the C50 files memory-mapped through the page cache (no GPUDirect Storage here).
    configs = [("B", "dense", 0.0, "host", False), ("C50", "bitmap", 0.5, "host", True),
               ("C50-disk", "bitmap", 0.5, "disk", False), ("C70", "bitmap", 0.7, "host", True)]
    res["configs"] = {name: run_config(model, ids, name, codec, s, storage, a.new_tokens, res["pinned_h2d_GBps"],
                                       a.out, prof)
                      for name, codec, s, storage, prof in configs}
    c = res["configs"]
    # The link is measured before and after the runs; each configuration is read against the best.
    res["pinned_h2d_GBps_after"] = h2d_GBps(True)
    best = max(res["pinned_h2d_GBps"], res["pinned_h2d_GBps_after"])
    res["pinned_h2d_GBps_best"] = best
    for r in c.values():
        r["frac_of_best_pinned"] = r["wire_GBps"] / best
    if a.accelerate_json:
        with open(a.accelerate_json) as f:
            acc = json.loads(f.read().strip().splitlines()[-1])
        c["A"] = acc
        # the peer generates one token more (its warm-up step); compare the common prefix
        res["same_tokens_A_vs_B"] = acc["generated"][:len(c["B"]["generated"])] == c["B"]["generated"]
        res["same_logits_A_vs_B"] = acc.get("logits_sha256") == c["B"]["logits_sha256"]
        for k in ("B", "C50", "C50-disk", "C70"):
            c[k]["speedup_vs_A"] = acc["s_per_token"] / c[k]["s_per_token"]
    for k in ("C50", "C50-disk", "C70"):
        c[k]["speedup_vs_B"] = c["B"]["s_per_token"] / c[k]["s_per_token"]
    line = json.dumps(res)
    with open(os.path.join(a.out, "offload_bench.json"), "w") as f:
        f.write(line + "\n")
    print(line)
    for k in ("A", "B", "C50", "C70", "C50-disk"):
        if k in c:
            r = c[k]
            print(f"{k:>4}: {r['s_per_token']:.4f} s/token  {r.get('effective_GBps', 0):6.1f} GB/s eff  "
                  f"frac_pinned={r.get('frac_of_best_pinned', r.get('frac_of_pinned', 0)):.3f}  vsA={r.get('speedup_vs_A', 1):.2f}  "
                  f"vsB={r.get('speedup_vs_B', float('nan')):.2f}  same={r.get('same_tokens_as_gpu')}")


if __name__ == "__main__":
    main()
