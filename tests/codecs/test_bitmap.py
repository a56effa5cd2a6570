"""Bitmap sparse format: bit-exact round trips, bytes on the wire, and the Triton kernel's logic."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings, strategies as st

from edgewise.codecs import bitmap
from edgewise.errors import EdgewiseError

INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}


def sparse(shape, dtype, sparsity, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g).to(dtype)
    w.view(-1)[torch.rand(w.numel(), generator=g) < sparsity] = 0
    return w


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.view(INT[a.dtype]), b.view(INT[b.dtype]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (31, 257), (5,), (3, 4, 5)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.7, 1.0])
def test_round_trip_is_bit_exact(dtype, shape, sparsity):
    w = sparse(shape, dtype, sparsity)
    assert same_bits(bitmap.decode(bitmap.encode(w, block=64)), w)


def test_negative_zero_and_nan_survive():
    w = torch.tensor([[0.0, -0.0, float("nan"), 1.0, float("-inf"), 0.0]], dtype=torch.float16)
    enc = bitmap.encode(w)
    assert enc.values.numel() == 4  # -0.0 has a non-zero bit pattern, so it is kept
    assert same_bits(bitmap.decode(enc), w)


def test_decode_into_preallocated_output_overwrites_it():
    w = sparse((9, 40), torch.float16, 0.5)
    out = torch.full_like(w, float("nan"))
    bitmap.decode(bitmap.encode(w, block=16), out=out)
    assert same_bits(out, w)


def test_bytes_on_the_wire():
    w = torch.ones(512, 256, dtype=torch.float16)
    w[:, ::2] = 0  # exactly 50%
    enc = bitmap.encode(w, block=1024)
    n = w.numel()
    assert enc.bitmap.numel() == n // 8
    assert enc.values.numel() == n // 2
    assert enc.nbytes == n // 8 + 2 * (n // 2) + 4 * (n // 1024)
    # 1 + 16 * (1 - s) = 9 bits per fp16 weight, plus 32 bits of block start per 1024 weights
    assert enc.nbytes * 8 / n == pytest.approx(9 + 32 / 1024)
    assert enc.dense_nbytes == 2 * n


def test_bad_block_and_mismatched_out_are_one_line_errors():
    w = sparse((4, 8), torch.float32, 0.5)
    with pytest.raises(EdgewiseError, match="block"):
        bitmap.encode(w, block=12)
    with pytest.raises(EdgewiseError, match="does not match"):
        bitmap.decode(bitmap.encode(w), out=torch.empty(8, 4))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       dtype=st.sampled_from(list(INT)), sparsity=st.floats(0, 1), block=st.sampled_from([8, 64, 256, 1024]),
       seed=st.integers(0, 2**31))
def test_fuzz_round_trip(shape, dtype, sparsity, block, seed):
    w = sparse(tuple(shape), dtype, sparsity, seed)
    enc = bitmap.encode(w, block)
    assert enc.values.numel() == int((w.view(INT[dtype]) != 0).sum())
    assert same_bits(bitmap.decode(enc), w)


def test_triton_kernel_decodes_bit_exact_under_the_interpreter():
    """The GPU kernel's indexing, checked on the CPU with Triton's interpreter."""
    pytest.importorskip("triton")
    code = textwrap.dedent("""
        import torch
        from edgewise.codecs import bitmap
        from edgewise.codecs.bitmap_kernel import decode_into
        for dt, it in ((torch.float16, torch.int16), (torch.bfloat16, torch.int16), (torch.float32, torch.int32)):
            for s in (0.0, 0.5, 0.7, 1.0):
                w = torch.randn(19, 45).to(dt)
                w.view(-1)[torch.rand(w.numel()) < s] = 0
                e = bitmap.encode(w, 128)
                out = torch.full_like(w, float("nan"))
                decode_into(out.view(-1).view(it), e.bitmap, e.block_starts, e.values.view(it), e.block)
                assert torch.equal(out.view(it), w.view(it)), (dt, s)
        print("ok")
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]
