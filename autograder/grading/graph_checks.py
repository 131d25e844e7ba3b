"""Architecture checks on a `torch.export` program: what the exported graph contains, never what
the student's code says. Reusable by any assignment (a rubric names the properties it wants; see
checks/spine_architectures.py and docs/assignments.md).

Spatial sizes come from the graph's own metadata: every node of an exported program carries
`meta["val"]`, a FakeTensor whose shape is symbolic when height and width were exported as
dynamic (e.g. `(s0, 16, s1//4, s2//4)`). Comparing such expressions symbolically is fragile
(`(s1 - 1)//32 + 1` and `ceil(s1/32)` are the same size), so each expression is *evaluated* at two
concrete input sizes by substituting the input's height and width symbols: two maps have the same
spatial size when they agree at both sizes, a map is lower-resolution when its area is smaller at
both, and a map "scales with the input" when its size differs between them. A program exported
with a static size has integer shapes and is evaluated at that one size.

Each property is a function from a `GraphView` (plus its threshold) to a `Finding`: passed or
not, and one plain sentence for the feedback.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import cached_property

DEFAULT_SIZES = ((64, 64), (96, 80))
GLOBAL_POOLS = frozenset({"mean", "amax", "max", "sum", "adaptive_avg_pool2d", "adaptive_max_pool2d",
                          "_adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "max_pool2d_with_indices"})
ADAPTIVE_POOLS = frozenset({"adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_avg_pool2d"})
LINEAR = frozenset({"linear", "addmm", "mm", "matmul"})
ADDITIONS = frozenset({"add", "add_"})
CONCATS = frozenset({"cat", "concat", "concatenate"})
SHORTCUT_OPS = ("conv", "batch_norm", "getitem", "contiguous", "clone", "to", "_to_copy")


@dataclass(frozen=True)
class Finding:
    name: str
    passed: bool
    sentence: str          # one plain sentence, shown to the student
    value: float | int | None = None


def op_name(node) -> str:
    """`aten.conv2d.default` -> "conv2d"; `operator.getitem` -> "getitem"."""
    target = node.target
    schema = getattr(target, "_schema", None)
    if schema is not None:
        return schema.name.split("::")[-1]
    if target is operator.getitem:
        return "getitem"
    return getattr(target, "__name__", str(target))


def _px(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


class GraphView:
    """The nodes of a program's graph with their spatial sizes at one or two input sizes."""

    def __init__(self, program, sizes=DEFAULT_SIZES):
        self.program = program
        self.graph = program.graph
        self.nodes = [n for n in self.graph.nodes if n.op == "call_function"]
        inputs = program.graph_signature.user_inputs
        placeholders = {n.name: n for n in self.graph.nodes if n.op == "placeholder"}
        self.input = placeholders.get(inputs[0]) if inputs else None
        shape = self._shape(self.input) if self.input is not None else None
        if shape is None or len(shape) != 4:
            raise ValueError("the exported model does not take one N x C x H x W image tensor")
        h, w = shape[2], shape[3]
        self.dynamic = not (isinstance(h, int) and isinstance(w, int))
        if self.dynamic:
            hs, ws = self._symbols(h), self._symbols(w)
            self.points = [{**{s: sz[0] for s in hs}, **{s: sz[1] for s in ws}} for sz in sizes]
            self.input_sizes = [tuple(sz) for sz in sizes]
        else:
            self.points = [{}]
            self.input_sizes = [(h, w)]

    @staticmethod
    def _shape(node):
        val = node.meta.get("val")
        shape = getattr(val, "shape", None)
        if shape is None:
            return None
        out = []
        for d in shape:
            expr = getattr(getattr(d, "node", None), "expr", None)
            out.append(int(d) if expr is None else (int(expr) if expr.is_number else expr))
        return tuple(out)

    @staticmethod
    def _symbols(dim):
        return set() if isinstance(dim, int) else set(dim.free_symbols)

    def _at(self, dim, point) -> int | None:
        if isinstance(dim, int):
            return dim
        value = dim.xreplace(point)
        try:    # sympy, or torch's FloorDiv evaluating to a Python int
            return int(value)
        except TypeError:   # a symbol that is not the input's height or width
            return None

    @cached_property
    def spatial(self) -> dict:
        """node -> ((h, w) at each input size) for 4-D tensors whose height and width evaluate."""
        out = {}
        for n in [self.input, *self.nodes]:
            shape = self._shape(n)
            if shape is None or len(shape) != 4:
                continue
            sizes = tuple((self._at(shape[2], p), self._at(shape[3], p)) for p in self.points)
            if all(None not in s for s in sizes):
                out[n] = sizes
        return out

    def scales(self, node) -> bool:
        """A feature map: 4-D, and larger than 1x1 (static) or resized with the input (dynamic)."""
        sizes = self.spatial.get(node)
        if sizes is None:
            return False
        if self.dynamic:
            return len(set(sizes)) > 1
        return sizes[0][0] * sizes[0][1] > 1

    def area(self, node) -> tuple[int, ...]:
        return tuple(h * w for h, w in self.spatial[node])

    def lower(self, a, b) -> bool:
        """a is at a strictly lower resolution than b (at every input size)."""
        return all(x < y for x, y in zip(self.area(a), self.area(b)))

    @cached_property
    def ancestors(self) -> dict:
        """node -> every node it depends on (the graph is in topological order)."""
        anc: dict = {}
        for n in self.graph.nodes:
            acc = set()
            for i in n.all_input_nodes:
                acc.add(i)
                acc |= anc.get(i, set())
            anc[n] = acc
        return anc

    def tensor_inputs(self, node) -> list:
        args = node.args[0] if op_name(node) in CONCATS else node.args
        args = args if isinstance(args, (list, tuple)) else [args]
        return [a for a in args if hasattr(a, "meta") and self._shape(a) is not None]

    def of(self, names) -> list:
        return [n for n in self.nodes if op_name(n) in names]

    @cached_property
    def last_linear(self):
        found = self.of(LINEAR)
        return found[-1] if found else None

    def size_text(self, node) -> str:
        return _px(self.spatial[node][0]) + f" at a {_px(self.input_sizes[0])} input"


# ---- the properties ------------------------------------------------------------------------------

def skip_concatenations(view: GraphView) -> list:
    """Concatenations along channels that join an encoder map with a decoder map of the same size:
    the decoder input came back up from a lower resolution, and the encoder input is upstream of it."""
    found = []
    for cat in view.of(CONCATS):
        dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
        maps = [a for a in view.tensor_inputs(cat) if view.scales(a)]
        if dim not in (1, -3) or len(maps) < 2 or len({view.spatial[m] for m in maps}) != 1:
            continue
        for decoder in maps:
            came_up = any(view.scales(a) and view.lower(a, decoder) for a in view.ancestors[decoder])
            if came_up and any(e is not decoder and e in view.ancestors[decoder] for e in maps):
                found.append(cat)
                break
    return found


def check_skip_concatenations(view: GraphView, at_least: int) -> Finding:
    cats = skip_concatenations(view)
    if len(cats) >= at_least:
        sizes = ", ".join(_px(view.spatial[c][0]) for c in cats)
        return Finding("skip_concatenations", True, f"{len(cats)} skip concatenations join encoder and decoder "
                       f"maps of the same size ({sizes} at a {_px(view.input_sizes[0])} input).", len(cats))
    return Finding("skip_concatenations", False,
                   f"The graph has {len(cats)} concatenation{'s' * (len(cats) != 1)} joining an encoder map with a "
                   f"decoder map of the same spatial size; at least {at_least} skip connections are required.", len(cats))


def check_bottleneck(view: GraphView) -> Finding:
    """A convolution runs at the lowest resolution of the graph, and its output is upsampled again."""
    maps = [n for n in view.spatial if view.scales(n) and n is not view.input]
    if not maps:
        return Finding("bottleneck", False, "The graph has no feature maps whose size follows the input, so it "
                       "has no bottleneck.")
    lowest = min(view.area(n) for n in maps)
    convs = [n for n in maps if "conv" in op_name(n) and view.area(n) == lowest]
    upsampled = [c for c in convs if any(view.scales(m) and c in view.ancestors[m] and view.lower(c, m) for m in maps)]
    where = view.size_text(next(n for n in maps if view.area(n) == lowest))
    if upsampled:
        return Finding("bottleneck", True, f"A bottleneck convolution runs at the lowest resolution ({where}) and "
                       "its output is upsampled again.")
    if not convs:
        return Finding("bottleneck", False, f"No convolution runs at the lowest resolution ({where}): there is no "
                       "bottleneck.")
    return Finding("bottleneck", False, f"The convolution at the lowest resolution ({where}) is never upsampled "
                   "again: there is no path from the bottleneck back up to the decoder.")


def global_pools(view: GraphView, names=GLOBAL_POOLS) -> list:
    """Reductions of a feature map to one value per channel (mean over H and W, adaptive 1x1 ...)."""
    found = []
    for n in view.of(names):
        source = view.tensor_inputs(n)[:1]
        if not source or not view.scales(source[0]):
            continue
        shape = view._shape(n)
        if len(shape) < 4 or (n in view.spatial and all(s == (1, 1) for s in view.spatial[n])):
            found.append(n)
    return found


def check_global_pool_before_linear(view: GraphView) -> Finding:
    last = view.last_linear
    if last is None:
        return Finding("global_pool_before_linear", False, "The graph has no linear layer at the end.")
    if any(p in view.ancestors[last] for p in global_pools(view)):
        return Finding("global_pool_before_linear", True, "The last linear layer reads globally pooled features.")
    return Finding("global_pool_before_linear", False, "The last linear layer does not follow a global pooling over "
                   "height and width.")


def check_adaptive_pool_before_classifier(view: GraphView) -> Finding:
    last = view.last_linear
    if last is None:
        return Finding("adaptive_pool_before_classifier", False, "The graph has no linear classifier at the end.")
    if any(p in view.ancestors[last] for p in global_pools(view, ADAPTIVE_POOLS)):
        return Finding("adaptive_pool_before_classifier", True, "An adaptive pooling layer feeds the classifier.")
    return Finding("adaptive_pool_before_classifier", False, "The classifier does not follow an adaptive pooling "
                   "layer (such as nn.AdaptiveAvgPool2d), so its input size depends on the image size.")


def _shortcut_sources(view: GraphView, node, depth: int = 4) -> list:
    """The node itself and, through a projection (1x1 convolution, batch norm), what it projects."""
    out, current = [node], node
    for _ in range(depth):
        if not any(k in op_name(current) for k in SHORTCUT_OPS):
            break
        inputs = view.tensor_inputs(current)
        if not inputs:
            break
        current = inputs[0]
        out.append(current)
    return out


def residual_additions(view: GraphView) -> list:
    """Additions of two same-shape feature maps where one input is the block's input (or its
    projection) and the other was computed from that input through at least one convolution."""
    found = []
    for add in view.of(ADDITIONS):
        inputs = view.tensor_inputs(add)
        if len(inputs) != 2 or inputs[0] is inputs[1] or not all(view.scales(i) for i in inputs):
            continue
        for shortcut, branch in (inputs, inputs[::-1]):
            convs = [c for c in view.ancestors[branch] | {branch} if "conv" in op_name(c)]
            if any(x in view.ancestors[c] for x in _shortcut_sources(view, shortcut) for c in convs):
                found.append(add)
                break
    return found


def check_residual_additions(view: GraphView, at_least: int) -> Finding:
    adds = residual_additions(view)
    if len(adds) >= at_least:
        return Finding("residual_additions", True, f"{len(adds)} residual additions add a block's input to its "
                       "output.", len(adds))
    return Finding("residual_additions", False,
                   f"The graph has {len(adds)} addition{'s' * (len(adds) != 1)} of a block's input to the block's "
                   f"output; at least {at_least} residual connections are required.", len(adds))


def parameter_count(program) -> int:
    state = program.state_dict
    return int(sum(state[name].numel() for name in program.graph_signature.parameters if name in state))


def check_parameter_budget(program, max_params: int) -> Finding:
    count = parameter_count(program)
    if count <= max_params:
        return Finding("parameter_budget", True, f"{count:,} parameters, within the budget of {max_params:,}.", count)
    return Finding("parameter_budget", False, f"The model has {count:,} parameters, more than the budget of "
                   f"{max_params:,}.", count)


def check_two_sizes(program, sizes, channels: int, batch: int = 2) -> Finding:
    """The program runs at both input sizes and predicts the same shape at both."""
    import torch

    module = program.module()
    shapes = []
    for h, w in sizes:
        try:
            with torch.no_grad():
                out = module(torch.zeros(batch, channels, h, w))
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0][:160]
            return Finding("two_sizes", False, f"The exported model fails on a {_px((h, w))} input "
                           f"({type(exc).__name__}: {first}); it must accept any height and width.")
        shapes.append(tuple(getattr(out, "shape", ())))
    if len(set(shapes)) == 1 and shapes[0][:1] == (batch,):
        return Finding("two_sizes", True, f"The prediction has the shape {shapes[0]} at "
                       f"{' and '.join(_px(s) for s in sizes)}.")
    return Finding("two_sizes", False, "The prediction's shape changes with the input size ("
                   + ", ".join(f"{s} at {_px(sz)}" for s, sz in zip(shapes, sizes)) + ").")


PROPERTIES = ("skip_concatenations", "bottleneck", "global_pool_before_linear", "residual_additions",
              "adaptive_pool_before_classifier", "parameter_budget", "two_sizes")


def check_architecture(program, require: dict, sizes=DEFAULT_SIZES, channels: int = 1) -> list[Finding]:
    """The findings for the properties in `require` (name -> threshold or true), in PROPERTIES order:
    skip_concatenations: N, residual_additions: N, parameter_budget: max, the others: true."""
    unknown = set(require) - set(PROPERTIES)
    if unknown:
        raise ValueError(f"unknown architecture properties {sorted(unknown)}; known: {', '.join(PROPERTIES)}")
    findings = []
    view = None
    for name in (p for p in PROPERTIES if require.get(p) not in (None, False)):
        if name == "parameter_budget":
            findings.append(check_parameter_budget(program, int(require[name])))
        elif name == "two_sizes":
            findings.append(check_two_sizes(program, sizes, channels))
        else:
            view = view or GraphView(program, sizes)
            if name == "skip_concatenations":
                findings.append(check_skip_concatenations(view, int(require[name])))
            elif name == "residual_additions":
                findings.append(check_residual_additions(view, int(require[name])))
            else:
                findings.append(globals()[f"check_{name}"](view))
    return findings
