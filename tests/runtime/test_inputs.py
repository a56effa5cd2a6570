"""Input sources: reproducible random inputs, tensor files, image folders, and bad ones refused."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from edgewise.errors import EdgewiseError
from edgewise.runtime.inputs import input_source

EXAMPLE = (torch.zeros(1, 3, 8, 8),)


def test_random_inputs_are_reproducible_and_shaped_like_the_example():
    fn, n = input_source("5", EXAMPLE)
    assert n is None
    assert torch.equal(fn(3)[0], fn(3)[0]) and not torch.equal(fn(3)[0], fn(4)[0])
    assert fn(0)[0].shape == (1, 3, 8, 8)


def test_token_inputs_stay_in_range():
    fn, _ = input_source(None, (torch.tensor([[5, 9, 2]]),))
    x = fn(1)[0]
    assert x.dtype == torch.int64 and int(x.max()) < 10


def test_tensor_file_yields_each_stacked_input(tmp_path):
    data = torch.randn(4, 3, 8, 8)
    torch.save(data, tmp_path / "x.pt")
    fn, n = input_source(str(tmp_path / "x.pt"), EXAMPLE)
    assert n == 4 and torch.equal(fn(2)[0], data[2:3])


def test_image_folder(tmp_path):
    from PIL import Image
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "a.png")
    fn, n = input_source(str(tmp_path), EXAMPLE)
    x = fn(0)[0]
    assert n == 1 and x.shape == (1, 3, 8, 8) and float(x[0, 0].mean()) == pytest.approx(1.0)


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.pt", "no such file"),
    (lambda p: (p / "junk.pt").write_bytes(b"not a tensor") and p / "junk.pt", "not a readable"),
    (lambda p: torch.save(torch.randn(4, 5), p / "bad.pt") or p / "bad.pt", "does not stack"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, make, match):
    with pytest.raises(EdgewiseError, match=match) as e:
        input_source(str(make(tmp_path)), EXAMPLE)
    assert "\n" not in str(e.value)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_a_tensor_file_fail_cleanly(tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("fuzz") / "x.pt"
    p.write_bytes(blob)
    try:
        input_source(str(p), EXAMPLE)
    except EdgewiseError:
        pass
