"""Load a rubric YAML file: schema validation with `file:line:` errors, then cross-checks."""

from __future__ import annotations

import difflib
from pathlib import Path

import jsonschema
import yaml

from .model import Band, Part, Rubric, RubricError
from .schema import RUBRIC

PROFILES = ("tiny", "full")


def _node_at(root: yaml.Node, path) -> yaml.Node:
    """The YAML node at a JSON-schema error path (keys and indices), as deep as it exists."""
    node = root
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == key]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node


def _key_node(root: yaml.Node, path, key: str) -> yaml.Node | None:
    parent = _node_at(root, path)
    if isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if k.value == key:
                return k
    return None


def _allowed_keys(schema_error) -> list[str]:
    props = schema_error.schema.get("properties", {})
    return list(props)


def _describe(error: jsonschema.ValidationError, root: yaml.Node, source: str) -> str:
    """One error as `file:line: what is wrong (and a hint)`."""
    path = list(error.absolute_path)
    node = _node_at(root, path)
    where = ".".join(str(p) for p in path) or "top level"
    message = error.message
    if error.validator == "additionalProperties":
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        if extra:
            key_node = _key_node(root, path, extra[0]) or node
            hint = difflib.get_close_matches(extra[0], _allowed_keys(error), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(_allowed_keys(error))})"
            return f"{source}:{key_node.start_mark.line + 1}: unknown key {extra[0]!r} in {where}{suggestion}"
    if error.validator == "enum":
        hint = difflib.get_close_matches(str(error.instance), [str(v) for v in error.validator_value], n=1)
        if hint:
            message += f" (did you mean {hint[0]!r}?)"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in (error.instance or {})]
        message = f"missing required key {missing[0]!r}" if missing else message
    return f"{source}:{node.start_mark.line + 1}: {where}: {message}"


def _best_errors(validator, data) -> list[jsonschema.ValidationError]:
    """The most specific errors: descend into if/then and allOf so a typo in a part is named."""
    leaves = []

    def walk(err):
        if err.context:
            for sub in err.context:
                walk(sub)
        else:
            leaves.append(err)

    for err in validator.iter_errors(data):
        walk(err)
    return sorted(leaves, key=lambda e: (list(map(str, e.absolute_path)), e.validator))


def _bands(raw: dict, key: str) -> dict:
    bands = {profile: tuple(Band(float(b[key]), float(b["points"])) for b in items)
             for profile, items in raw.items()}
    # best band first: highest bound for metrics, lowest ratio for timing
    return {p: tuple(sorted(b, key=lambda band: band.bound, reverse=(key == "at_least"))) for p, b in bands.items()}


def _part(raw: dict) -> Part:
    kind = raw["kind"]
    common = dict(id=raw["id"], kind=kind, title=raw["title"])
    if kind == "tests":
        cells = {k: float(v) for k, v in raw["cells"].items()}
        return Part(**common, points=sum(cells.values()), cells=cells)
    if kind == "metric":
        return Part(**common, points=float(raw["points"]), metric=raw["metric"], bands=_bands(raw["bands"], "at_least"))
    if kind == "timing":
        return Part(**common, points=float(raw["points"]), cell=raw["cell"], bands=_bands(raw["bands"], "at_most"))
    if kind == "reflection":
        return Part(**common, points=float(raw["points"]), cell=raw["cell"], options=dict(raw.get("reflection", {})))
    if kind == "inquiry":
        checks = {k: float(v) for k, v in raw["inquiry"]["checks"].items()}
        return Part(**common, points=sum(checks.values()), cell=raw["cell"], options=dict(raw["inquiry"]))
    if kind == "efficiency":
        options = {k: v for k, v in raw.items() if k not in ("id", "kind", "title", "points")}
        options["measures"] = {name: {"points": float(m["points"]), "bands": _bands(m["bands"], "at_most")}
                               for name, m in raw["measures"].items()}
        return Part(**common, points=float(raw["points"]), options=options)
    return Part(**common, points=float(raw["points"]), options={"check": raw["check"], "options": raw.get("options", {})})


def _line_of_part(root: yaml.Node, index: int) -> int:
    return _node_at(root, ["parts", index]).start_mark.line + 1


def _cross_check(data: dict, root: yaml.Node, source: str, expected_name: str | None) -> None:
    def fail(line, msg):
        raise RubricError(f"{source}:{line}: {msg}")

    if expected_name and data["assignment"] != expected_name:
        fail(_node_at(root, ["assignment"]).start_mark.line + 1,
             f"assignment is {data['assignment']!r} but the file is for {expected_name!r}")
    needs_data = [p["id"] for p in data["parts"] if p["kind"] in ("metric", "artifact", "inquiry", "efficiency")]
    if needs_data and "dataset" not in data:
        fail(1, f"part {needs_data[0]!r} looks at the exported model, so the rubric needs `dataset:` "
                "(the registry name of the data it is evaluated on)")
    seen: dict[str, int] = {}
    cells: dict[str, str] = {}
    answer_cells: dict[str, str] = {}
    for i, raw in enumerate(data["parts"]):
        line = _line_of_part(root, i)
        if raw["id"] in seen:
            fail(line, f"part id {raw['id']!r} is used twice (first at line {seen[raw['id']]})")
        seen[raw["id"]] = line
        for cell in raw.get("cells", {}):
            if cell in cells:
                fail(line, f"test cell {cell!r} is scored by two parts ({cells[cell]!r} and {raw['id']!r})")
            cells[cell] = raw["id"]
        if raw.get("cell") in answer_cells and raw["kind"] in ("reflection", "inquiry"):
            fail(line, f"answer cell {raw['cell']!r} is scored by two parts ({answer_cells[raw['cell']]!r} and {raw['id']!r})")
        if raw["kind"] in ("reflection", "inquiry"):
            answer_cells[raw["cell"]] = raw["id"]
        if raw["kind"] == "inquiry":
            _check_inquiry(raw, line, fail)
        if raw["kind"] == "efficiency":
            _check_efficiency(raw, line, fail)
        if raw["kind"] == "reflection" and "reflection" in raw:
            _check_reflection(raw, line, fail)
        bands = raw.get("bands", {})
        for profile in PROFILES:
            if "bands" in raw and profile not in bands:
                fail(line, f"part {raw['id']!r} has no bands for the {profile!r} profile (every threshold is per profile)")
        for profile, items in bands.items():
            top = max(b["points"] for b in items)
            if top != raw["points"]:
                fail(line, f"part {raw['id']!r}: the best {profile} band gives {top} points, not the part's {raw['points']}")


def reflection_spec(part):
    """The reflection engine's spec for a rubric reflection part (None: manual grading only)."""
    from ..reflection import spec_from_dict

    if not part.options:
        return None
    return spec_from_dict({**part.options, "id": part.id, "points": part.points})


def _check_reflection(raw: dict, line: int, fail) -> None:
    from ..reflection import SpecError, spec_from_dict

    try:
        spec_from_dict({**raw["reflection"], "id": raw["id"], "points": raw["points"]})
    except SpecError as exc:
        fail(line, f"part {raw['id']!r}: reflection criteria: {exc}")


def _check_efficiency(raw: dict, line: int, fail) -> None:
    """Points add up (each measure's points count once per program, plus the written answer), and
    every measure has bands for every profile whose best band gives the measure's points."""
    measures = raw["measures"]
    for name, m in measures.items():
        for profile in PROFILES:
            if profile not in m["bands"]:
                fail(line, f"part {raw['id']!r}: measure {name!r} has no bands for the {profile!r} profile")
            top = max(b["points"] for b in m["bands"][profile])
            if top != m["points"]:
                fail(line, f"part {raw['id']!r}: measure {name!r}: the best {profile} band gives {top} points, "
                           f"not the measure's {m['points']}")
    total = len(raw["programs"]) * sum(m["points"] for m in measures.values()) + raw.get("written", {}).get("points", 0)
    if abs(total - raw["points"]) > 1e-9:
        fail(line, f"part {raw['id']!r}: points is {raw['points']} but {len(raw['programs'])} program(s) x the measures' "
                   f"points{' + the written answer' if 'written' in raw else ''} make {total:g}")


def _check_inquiry(raw: dict, line: int, fail) -> None:
    spec = raw["inquiry"]
    unknown = sorted({k for config in spec["baseline"].values() for k in config} - set(spec["variables"]))
    if unknown:
        fail(line, f"part {raw['id']!r}: baseline variables {', '.join(unknown)} have no entry under `variables` "
                   "(how students name them and which mechanisms count)")


def parse_rubric(text: str, source: str = "<rubric>", expected_name: str | None = None) -> Rubric:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise RubricError(f"{source}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None or not isinstance(data, dict):
        raise RubricError(f"{source}:1: a rubric is a mapping with assignment, title, version, dataset and parts")
    errors = _best_errors(jsonschema.Draft202012Validator(RUBRIC), data)
    if errors:
        raise RubricError("\n".join(dict.fromkeys(_describe(e, root, source) for e in errors[:5])))
    _cross_check(data, root, source, expected_name)
    return Rubric(
        assignment=data["assignment"], title=data["title"], version=int(data["version"]),
        dataset=data.get("dataset"), parts=tuple(_part(p) for p in data["parts"]),
        limits=data.get("limits", {}), path=None if source.startswith("<") else Path(source),
    )


def load_rubric(path: Path, expected_name: str | None = None) -> Rubric:
    path = Path(path)
    if not path.is_file():
        raise RubricError(f"{path}: no rubric file (each assignment needs rubrics/<assignment>.yaml)")
    return parse_rubric(path.read_text(), str(path.resolve()), expected_name or path.stem)
