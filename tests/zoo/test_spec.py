"""Model specs: the three forms load a model in eval mode with example inputs; every bad spec
is an EdgewiseError with a one-line message that names the problem."""
import textwrap

import onnx
import pytest
import torch
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

from edgewise import zoo
from edgewise.errors import EdgewiseError
from edgewise.graph.trace import trace
from edgewise.zoo.spec import load_model

REQUIRED = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
            "googlenet", "inception_v3", "vgg16", "alexnet", "vit_b_16", "mlp_mixer", "unet",
            "m5", "mlp", "gpt2", "gpt2-xl", "llama"}


def bad(spec: str) -> str:
    with pytest.raises(EdgewiseError) as err:
        load_model(spec)
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


def test_zoo_lists_every_family():
    assert REQUIRED <= set(zoo.names())


def test_zoo_spec_loads_a_model_in_eval_mode():
    loaded = load_model("zoo:mlp")
    assert not loaded.model.training
    assert loaded.example_inputs[0].shape == (1, 784)
    assert loaded.model(*loaded.example_inputs).shape == (1, 10)


def test_every_load_gives_the_same_weights_and_inputs_and_keeps_the_callers_rng():
    # Each pipeline stage's worker loads the model itself: the weights must agree.
    before = torch.random.get_rng_state()
    a, b = load_model("zoo:m5"), load_model("zoo:m5")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a.example_inputs[0], b.example_inputs[0])
    for (k, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), k


def test_unknown_zoo_name_suggests_close_matches():
    msg = bad("zoo:resnet5")
    assert "'resnet5'" in msg and "zoo:resnet50" in msg
    assert "known:" in bad("zoo:qqqqqqqq")


FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    def make():
        return nn.Sequential(nn.Linear(4, 2)).train(), (torch.randn(1, 4),)

    def one_tensor():
        return nn.Linear(4, 2), torch.randn(1, 4)

    def wrong_shape():
        return nn.Linear(4, 2)

    def not_a_module():
        return "model", (torch.randn(1, 4),)

    def no_inputs():
        return nn.Linear(4, 2), ()

    def raises():
        raise RuntimeError("out of coffee\\nmore detail")

    NOT_CALLABLE = 3
''')


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(FACTORY)
    return path


def test_file_factory_spec_loads_and_sets_eval_mode(factory_file):
    loaded = load_model(f"{factory_file}:make")
    assert not loaded.model.training and loaded.example_inputs[0].shape == (1, 4)
    assert load_model(f"{factory_file}:one_tensor").example_inputs[0].shape == (1, 4)


@pytest.mark.parametrize("factory, expected", [
    ("missing", "'missing' is not a function"),
    ("NOT_CALLABLE", "'NOT_CALLABLE' is not a function"),
    ("wrong_shape", "must return (model, example_inputs)"),
    ("not_a_module", "not a torch.nn.Module"),
    ("no_inputs", "non-empty tuple of tensors"),
    ("raises", "raises() raised RuntimeError: out of coffee"),
    ("", "is not a function"),
])
def test_bad_factory_is_a_one_line_error(factory_file, factory, expected):
    assert expected in bad(f"{factory_file}:{factory}")


def test_missing_or_broken_files_are_one_line_errors(tmp_path):
    assert "no such file" in bad(f"{tmp_path}/nope.py:make")
    assert "no such file" in bad(f"{tmp_path}/nope.onnx")
    broken = tmp_path / "broken.py"
    broken.write_text("def make(:\n")
    assert "importing" in bad(f"{broken}:make") and "SyntaxError" in bad(f"{broken}:make")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx model at all\xff" * 10)
    assert "not a readable ONNX model" in bad(str(junk))
    assert "is not one of" in bad("resnet50")
    assert "names no factory; write models.py:FUNCTION" in bad("models.py")


def _onnx_mlp(path):
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [8, 16], torch.randn(8 * 16).tolist())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [16, 4], torch.randn(16 * 4).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_file_loads_with_batch_one_inputs_and_traces(tmp_path):
    path = tmp_path / "mlp.onnx"
    _onnx_mlp(path)
    loaded = load_model(str(path))
    assert loaded.example_inputs[0].shape == (1, 8)
    graph = trace(loaded.model, loaded.example_inputs, str(path))
    assert graph.total_flops == 2 * (8 * 16 + 16 * 4)
    assert graph.total_param_bytes == 4 * (8 * 16 + 16 * 4)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text().map(lambda s: "zoo:" + s),
                 st.text().map(lambda s: s + ".onnx"), st.text().map(lambda s: s + ".py:make"),
                 st.text().map(lambda s: "/tmp/" + s + ".py:" + s)))
def test_random_specs_raise_only_edgewise_errors(spec):
    if spec.removeprefix("zoo:") in zoo.FACTORIES:
        return                                  # a real model: building it is not the point
    with pytest.raises(EdgewiseError) as err:
        load_model(spec)
    assert "\n" not in str(err.value)


def test_a_saved_program_holds_the_model_and_its_inputs_and_goes_with_its_context():
    from pathlib import Path
    from edgewise.zoo.spec import saved_program
    loaded = load_model("zoo:mlp")
    with saved_program("zoo:mlp") as path:
        program = torch.export.load(path)
        (x,) = program.example_inputs[0]
        assert torch.equal(x, loaded.example_inputs[0])
        assert torch.allclose(program.module()(x), loaded.model(x))
    assert not Path(path).exists()
    with saved_program(None) as nothing:
        assert nothing is None


def test_a_saved_program_of_a_bad_spec_is_the_specs_one_line_error():
    from edgewise.zoo.spec import saved_program
    with pytest.raises(EdgewiseError) as e:
        with saved_program("zoo:nope"):
            pass
    assert "\n" not in str(e.value)
