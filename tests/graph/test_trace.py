"""Tracing small hand-made models: the DAG keeps skips and concats, metadata ops fold away
without breaking edges, FLOPs add up to torch's count of the whole forward, and models no
tracer can take apart fall back to module level."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgewise.errors import EdgewiseError
from edgewise.graph.modules import trace_modules
from edgewise.graph.opgraph import OpGraph
from edgewise.graph.trace import trace, trace_fx


def whole_flops(model, inputs) -> int:
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


def assert_dag(graph: OpGraph) -> None:
    """Ops are topological, every edge names an earlier op or a model input."""
    seen = set()
    for op in graph.ops:
        for src in op.inputs:
            assert src in seen or (src.startswith("input:") and int(src[6:]) < len(graph.inputs)), \
                f"{op.name} reads {src}, which is neither an earlier op nor an input"
        seen.add(op.name)
    assert graph.outputs and set(graph.outputs) <= seen


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x))) + x            # residual skip from the input
        return self.head(y.flatten(1))                   # flatten is a view: folded away


class Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.branches = nn.ModuleList(nn.Conv2d(4, 2, k, padding=k // 2) for k in (1, 3, 5))

    def forward(self, x):
        s = self.stem(x)
        return torch.cat([b(s) for b in self.branches], dim=1)


class DataDependent(nn.Module):
    """Python control flow on a tensor's value: neither torch.export nor fx can trace it."""

    def forward(self, x):
        return x * 2 if x.sum() > 0 else -x


def test_residual_add_reads_the_skip_and_views_fold_into_their_producer():
    model, inputs = Skip().eval(), (torch.randn(1, 4, 8, 8),)
    graph = trace(model, inputs, "skip")
    assert graph.level == "op"
    assert_dag(graph)
    kinds = {op.name: op.kind for op in graph.ops}
    assert not any("view" in k or "flatten" in k or "getitem" in k for k in kinds.values())
    (add,) = [op for op in graph.ops if op.kind.startswith("aten.add")]
    assert "input:0" in add.inputs and len(add.inputs) == 2
    (linear,) = [op for op in graph.ops if op.kind == "aten.linear.default"]
    assert linear.inputs == (add.name,)                  # through the folded flatten
    assert linear.param_names == ("head.weight", "head.bias")
    assert graph.total_flops == whole_flops(model, inputs) > 0


def test_concat_of_branches_reads_every_branch():
    model, inputs = Branches().eval(), (torch.randn(1, 3, 8, 8),)
    graph = trace(model, inputs, "branches")
    assert_dag(graph)
    (cat,) = [op for op in graph.ops if op.kind.startswith("aten.cat")]
    convs = [op.name for op in graph.ops if op.layer.startswith("branches.")]
    assert set(cat.inputs) == set(convs) and len(convs) == 3
    assert cat.output_shapes == ((1, 6, 8, 8),)
    assert {op.layer for op in graph.ops} == {"stem", "branches.0", "branches.1", "branches.2", ""}


def test_op_names_are_the_exported_graph_node_names():
    model, inputs = Skip().eval(), (torch.randn(1, 4, 8, 8),)
    exported = torch.export.export(model, inputs, strict=False)
    names = {n.name for n in exported.graph.nodes if n.op == "call_function"}
    graph = trace(model, inputs)
    assert {op.name for op in graph.ops} <= names


def test_bytes_and_params_are_counted_once_and_add_up():
    model, inputs = Skip().eval(), (torch.randn(1, 4, 8, 8),)
    graph = trace(model, inputs)
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert graph.total_param_bytes == state_bytes
    names = [k for op in graph.ops for k in op.param_names]
    assert sorted(names) == sorted(model.state_dict())
    for op in graph.ops:
        assert op.bytes_moved >= op.output_bytes > 0      # read + written
    (relu,) = [op for op in graph.ops if op.kind.startswith("aten.relu")]
    assert relu.flops == 0 and relu.bytes_moved == 2 * 4 * 8 * 8 * 4


def test_fx_tracer_gives_the_same_flops_and_dag():
    model, inputs = Skip().eval(), (torch.randn(1, 4, 8, 8),)
    graph = trace_fx(model, inputs, "skip")
    assert graph.level == "op"
    assert_dag(graph)
    assert graph.total_flops == whole_flops(model, inputs)
    assert graph.total_param_bytes == trace(model, inputs).total_param_bytes
    (linear,) = [op for op in graph.ops if op.layer == "head"]
    assert linear.param_names == ("head.weight", "head.bias")


def test_untraceable_sequential_falls_back_to_its_children():
    model = nn.Sequential(nn.Linear(8, 16), DataDependent(), nn.ReLU(), nn.Linear(16, 4)).eval()
    inputs = (torch.randn(1, 8),)
    graph = trace(model, inputs, "seq")
    assert graph.level == "module"
    assert [op.name for op in graph.ops] == ["0", "1", "2", "3"]
    assert [op.inputs for op in graph.ops] == [("input:0",), ("0",), ("1",), ("2",)]
    assert graph.outputs == ("3",)
    assert graph.total_flops == whole_flops(model, inputs) == 2 * (8 * 16 + 16 * 4)
    assert graph.ops[3].output_shapes == ((1, 4),)
    assert graph.total_param_bytes == 4 * (8 * 16 + 16 + 16 * 4 + 4)


def test_module_level_follows_tensors_through_glue_code():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Linear(4, 4)
            self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
            self.scale = nn.Parameter(torch.ones(4))     # used by the forward itself

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = x + block(x) * self.scale           # glue: the skip add happens here
            return x

    model, inputs = Residual().eval(), (torch.randn(2, 4),)
    graph = trace_modules(model, inputs, "residual")
    assert [op.name for op in graph.ops] == ["stem", "blocks.0", "blocks.1", "blocks.2"]
    assert graph.ops[1].inputs == ("stem",)
    # blocks.1 reads stem + blocks.0(...): both producers behind the glue add.
    assert set(graph.ops[2].inputs) == {"stem", "blocks.0"}
    assert set(graph.outputs) == {"stem", "blocks.0", "blocks.1", "blocks.2"}
    assert graph.total_flops == whole_flops(model, inputs)
    assert graph.total_param_bytes == sum(p.numel() * 4 for p in model.parameters())
    assert "scale" in graph.ops[0].param_names


def test_untraceable_model_without_children_is_one_line_error_naming_each_try():
    with pytest.raises(EdgewiseError) as err:
        trace(DataDependent(), (torch.randn(3),), "dd")
    msg = str(err.value)
    assert "\n" not in msg
    assert "torch.export" in msg and "torch.fx" in msg and "no child modules" in msg


def test_module_level_error_names_the_module_that_failed():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("bad\nsecond line")

    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), Broken())).eval()
    with pytest.raises(EdgewiseError) as err:
        trace(model, (torch.ones(1, 3),), "broken")
    msg = str(err.value)
    assert "\n" not in msg and "module '1.1' failed: ValueError: bad" in msg


def test_module_level_reaches_the_blocks_inside_a_wrapper():
    from transformers import GPT2Config, GPT2Model

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50,
                                           use_cache=False))

        def forward(self, ids):
            return self.lm(input_ids=ids).last_hidden_state

    model, inputs = Wrapper().eval(), (torch.randint(0, 50, (1, 5)),)
    graph = trace_modules(model, inputs, "wrapped")
    names = [op.name for op in graph.ops]
    assert "lm.h.0" in names and "lm.h.1" in names and names[-1] == "lm.ln_f"
    assert graph.ops[names.index("lm.h.1")].inputs == ("lm.h.0",)
    assert graph.total_flops == whole_flops(model, inputs)
    unique = {id(t): t for t in model.state_dict(keep_vars=True).values()}
    assert graph.total_param_bytes == sum(t.numel() * t.element_size() for t in unique.values())


def test_summary_picks_a_depth_that_shows_the_blocks_of_a_wrapped_model():
    from edgewise.graph.summary import auto_depth, by_layer

    wrapped = nn.Sequential(nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.ReLU())
                                            for _ in range(10)]))
    graph = trace(wrapped.eval(), (torch.randn(1, 4),))
    assert auto_depth(graph) == 2
    rows = by_layer(graph)
    assert [r.layer for r in rows] == [f"0.{i}" for i in range(10)]
    assert sum(r.flops for r in rows) == graph.total_flops
    assert rows[-1].output_shapes == ((1, 4),) and all(r.ops == 2 for r in rows)
