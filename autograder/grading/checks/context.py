"""What an evaluator check may use: the exported artifacts, the hidden data, an output folder.

The artifacts are untrusted: the student's notebook wrote them. Files are read only when they
are regular files inside the artifacts folder (no links, FIFOs or devices), JSON only when
small, tensors weights-only, and a `torch.export` archive only after `check_export_archive`
has shown that loading and calling it cannot run code or touch files (see below).
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ...safejson import read_json_file

MAX_JSON_BYTES = 2**20             # history.json, reported.json: a few kB when honest
MAX_ARCHIVE_BYTES = 2**31          # uncompressed size of one exported program


class UnsafeArtifact(ValueError):
    """An artifact the evaluator refuses to open: it could run code or read files if loaded."""


@dataclass
class EvalContext:
    artifacts: Path            # written by the student's export cell (untrusted content)
    out: Path                  # the evaluator's own output folder (figures)
    dataset: str
    profile: str
    hidden_root: Path | None
    data_root: Path | None
    secret: int                # the course secret: seeds hidden stand-ins
    sandboxed: bool = True     # the session's setting: a check that runs student code follows it
    reference: dict = field(default_factory=dict)   # the reference run's measures on this runner ({"service": ...})
    _programs: dict = field(default_factory=dict, repr=False)

    def file(self, filename: str) -> Path:
        """artifacts/<filename>, if it is a regular file reached without following any link."""
        path = self.artifacts
        for part in (None, *Path(filename).parts):
            if part is not None:
                if part in ("..", "/"):
                    raise UnsafeArtifact(f"{filename}: not a file name inside the artifacts")
                path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                raise FileNotFoundError(f"no {filename} among the exported artifacts") from None
            if stat.S_ISLNK(mode):
                raise UnsafeArtifact(f"{filename}: {path.name} is a link; artifacts must be plain files")
        if not stat.S_ISREG(mode):
            raise UnsafeArtifact(f"{filename} is not a regular file")
        return path

    def program(self, filename: str = "model.pt2"):
        """A torch.export program from the artifacts, checked before and after loading so that
        neither loading nor calling it runs anything but tensor operators."""
        import torch

        if filename not in self._programs:  # a large model is checked and loaded once per evaluation
            import torch.ao.quantization.fx._decomposed  # noqa: F401 - registers the int8 Q/DQ operators (below)
            checked = check_export_archive(self.file(filename))
            program = torch.export.load(io.BytesIO(checked))
            check_program_graph(program)
            self._programs[filename] = program
        return self._programs[filename]

    def module(self, filename: str = "model.pt2"):
        """The program as a callable module, unlifted once per evaluation (about 0.15 s each
        time for a GoogLeNet, and an evaluation predicts several splits). Not for callers that
        edit its graph (Grad-CAM): they unlift a module of their own."""
        key = f"module:{filename}"
        if key not in self._programs:
            self._programs[key] = self.program(filename).module()
        return self._programs[key]

    def json(self, filename: str) -> dict:
        path = self.file(filename)
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UnsafeArtifact(f"{filename} is larger than {MAX_JSON_BYTES // 1024} kB")
        try:   # no link, a regular file, bounded size and depth (the notebook wrote it)
            data = read_json_file(path, MAX_JSON_BYTES)
        except ValueError as exc:
            raise ValueError(f"{filename}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{filename} is not a JSON object")
        return data

    def tensors(self, filename: str) -> dict:
        """Tensors saved with torch.save, loaded with weights_only=True (no pickle code runs)."""
        import torch

        return torch.load(self.file(filename), map_location="cpu", weights_only=True)

    @cached_property
    def test_split(self):
        from ...datasets.hidden import load_test_split

        return load_test_split(self.dataset, self.profile, self.hidden_root, self.secret)

    def figure(self, name: str) -> Path | None:
        """A figure the student exported (artifacts/figures/<name>.png), if any."""
        try:
            return self.file(f"figures/{name}.png")
        except (FileNotFoundError, UnsafeArtifact):
            return None


# ---- torch.export archives -------------------------------------------------------------------
#
# torch.export.load is not safe on untrusted files (torch 2.14): it unpickles with
# weights_only=False (entries marked use_pickle, "opaque" constants, and as a fallback for
# sample inputs that weights_only=True refuses), evaluates symbolic-shape strings with
# sympy.sympify (eval), execs the guard strings when the module is built, loads AOTInductor
# shared libraries, and the graph may call any registered operator, e.g. aten::from_file.
# So the archive is checked first, without torch's loader: every member is one a plain export
# writes, nothing is pickled beyond what weights_only=True accepts, and every expression string
# parses to an allow-listed form; after loading, every node of the graph must be a tensor
# operator that touches no file.

_MEMBER = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/\w+\.json|data/sample_inputs/\w+\.pt|extra/[\w.-]+"
    r"|data/weights/(weight_\d+|\w+_weights_config\.json)"
    r"|data/constants/(tensor_\d+|\w+_constants_config\.json)")
_PAYLOAD_NAME = re.compile(r"(weight|tensor)_\d+")
_SYMBOL = re.compile(r"[a-z]{1,4}\d+")                     # s0, s77, u3, zuf0: shape symbols
_SYMPY_CALLS = frozenset({
    "Symbol", "Integer", "Rational", "Float", "Max", "Min", "Mul", "Add", "Pow", "Abs", "Mod", "floor",
    "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan",
    "GreaterThan", "Equality", "Unequality", "And", "Or", "Not", "Piecewise", "sqrt", "oo", "zoo", "nan",
    "true", "false", "True", "False", "None", "int_oo",
    # torch.utils._sympy.functions
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "Identity",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor",
})
_SYMPY_KEYWORDS = frozenset({"positive", "negative", "integer", "real", "nonnegative", "nonpositive", "finite",
                             "infinite", "commutative", "even", "odd", "nonzero", "zero", "rational", "evaluate"})
_GUARD_NAMES = frozenset({"L", "args", "math", "inf"}) | _SYMPY_CALLS
_GUARD_ATTRS = frozenset({"size", "stride", "storage_offset", "dim", "shape", "numel",
                          "floor", "ceil", "trunc", "sqrt", "inf"})
# F.interpolate leaves guards like "torch.sym_max(1, L['x'].size()[3] // 2) > 1" when height and
# width are dynamic: `torch` is allowed as a name only as the base of these two calls.
_TORCH_GUARD_CALLS = frozenset({"sym_max", "sym_min"})
_SAFE_AST = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.Name, ast.Constant,
             ast.keyword, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


def _check_expression(text: str, what: str, names: frozenset, attributes: frozenset = frozenset()) -> None:
    """`text` parses to arithmetic, comparisons and calls of allow-listed names only: no
    attribute beyond `attributes`, no subscripts but L['name'] / x[0], no dunder, no lambda."""
    if not isinstance(text, str) or len(text) > 10_000:
        raise UnsafeArtifact(f"{what}: not a short expression string")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, ValueError):
        raise UnsafeArtifact(f"{what}: not an expression: {text[:80]!r}") from None
    torch_calls = {id(n.value) for n in ast.walk(tree) if attributes and isinstance(n, ast.Attribute)
                   and n.attr in _TORCH_GUARD_CALLS and isinstance(n.value, ast.Name) and n.value.id == "torch"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            ok = node.id in names or bool(_SYMBOL.fullmatch(node.id)) or id(node) in torch_calls
        elif isinstance(node, ast.Attribute):
            ok = node.attr in attributes or id(node.value) in torch_calls
        elif isinstance(node, ast.Subscript):
            ok = bool(attributes) and isinstance(node.slice, ast.Constant)
        elif isinstance(node, ast.Call):
            func = node.func
            ok = (isinstance(func, ast.Name) and func.id in names) or \
                 (isinstance(func, ast.Attribute) and (func.attr in attributes or id(func.value) in torch_calls))
        elif isinstance(node, ast.keyword):
            ok = node.arg in _SYMPY_KEYWORDS
        elif isinstance(node, ast.Constant):
            ok = isinstance(node.value, (int, float, bool, type(None))) or \
                 (isinstance(node.value, str) and bool(re.fullmatch(r"\w{1,64}", node.value)))
        else:
            ok = isinstance(node, _SAFE_AST)
        if not ok:
            raise UnsafeArtifact(f"{what}: {type(node).__name__} not allowed in {text[:80]!r}")


def _check_model_json(model, name: str) -> None:
    stack = [model]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expr_str":
                    _check_expression(value, f"{name}: a symbolic shape", _SYMPY_CALLS)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    guards = model.get("guards_code") or [] if isinstance(model, dict) else []
    for guard in guards if isinstance(guards, list) else [guards]:
        _check_expression(guard, f"{name}: a guard", _GUARD_NAMES, _GUARD_ATTRS)


def _check_payload_config(config, name: str) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise UnsafeArtifact(f"{name}: not a payload configuration")
    for fqn, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("use_pickle") or \
                not _PAYLOAD_NAME.fullmatch(str(entry.get("path_name", ""))):
            raise UnsafeArtifact(f"{name}: {fqn!r} is not a plain tensor (pickled or custom objects are refused)")


def check_export_archive(path: Path) -> bytes:
    """The archive at `path`, re-packed from the members checked here (so torch's zip reader sees
    exactly what was checked); UnsafeArtifact unless loading it can run no code."""
    import torch

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArtifact(f"{Path(path).name} is not a torch.export archive ({exc})") from None
    clean = io.BytesIO()
    with archive, zipfile.ZipFile(clean, "w", zipfile.ZIP_STORED) as repacked:
        infos = archive.infolist()
        if not infos or len(infos) > 10_000 or sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
            raise UnsafeArtifact(f"{Path(path).name}: empty or too large")
        roots = {i.filename.split("/", 1)[0] for i in infos}
        names = [i.filename for i in infos]
        if len(roots) != 1 or any("/" not in n for n in names) or len(set(names)) != len(names):
            raise UnsafeArtifact(f"{Path(path).name}: not the layout torch.export.save writes")
        for info in infos:
            name = info.filename.split("/", 1)[1]
            if info.is_dir():
                continue
            if not _MEMBER.fullmatch(name):
                raise UnsafeArtifact(f"{Path(path).name}: unexpected member {name!r} (only plain exports are accepted)")
            try:
                data = archive.read(info)
                if name.endswith("_config.json"):
                    _check_payload_config(json.loads(data), name)
                elif name.startswith("models/"):
                    _check_model_json(json.loads(data), name)
                elif name.startswith("data/sample_inputs/"):
                    inputs = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                    if not isinstance(inputs, (tuple, dict)):
                        raise UnsafeArtifact(f"{name}: not a tuple of example inputs")
            except UnsafeArtifact:
                raise
            except Exception as exc:  # torch.load refused (pickled code), bad JSON, a broken zip, ...
                first = (str(exc).splitlines() or [""])[0][:120]
                raise UnsafeArtifact(f"{name}: refused ({type(exc).__name__}: {first})") from None
            repacked.writestr(info.filename, data)
    return clean.getvalue()


# Operators an exported graph may call: tensor operators of aten and prims that take no file
# name, the symbolic-shape arithmetic torch.export emits, and control-flow operators.
_FILE_OPS = frozenset({"from_file", "save", "load", "_print", "to_file"})
_FILE_ARGS = frozenset({"filename", "path", "file", "f"})
# int8 programs (PT2E quantization, torchao's convert_pt2e) quantize and dequantize between the
# float operators: pure tensor arithmetic, defined by torch itself (torch.ao.quantization.fx._decomposed)
_QDQ = frozenset({"quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel"})
_HIGHER_ORDER = frozenset({"cond", "while_loop", "map_impl", "scan", "wrap_with_set_grad_enabled",
                           "wrap_with_autocast", "invoke_subgraph"})


def _allowed_target(target) -> bool:
    import torch
    from torch._export.serde.serialize import _SYM_OPS

    if isinstance(target, torch._ops.OpOverload):
        namespace, _, name = target._schema.name.partition("::")
        if namespace == "quantized_decomposed":
            return name in _QDQ
        return namespace in ("aten", "prims") and name not in _FILE_OPS and \
            not any(arg.name in _FILE_ARGS for arg in target._schema.arguments)
    if isinstance(target, torch._ops.HigherOrderOperator):
        return target.name() in _HIGHER_ORDER
    return target in _SYM_OPS


def check_program_graph(program) -> None:
    """Every node of every graph in the program is an allowed operator (see above)."""
    import torch

    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op in ("call_module", "call_method") or \
                    (node.op == "call_function" and not _allowed_target(node.target)):
                raise UnsafeArtifact(f"the exported graph calls {node.target}, which the grader does not run "
                                     "(only tensor operators are allowed)")
