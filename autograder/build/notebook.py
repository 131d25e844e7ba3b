"""Assemble the nbgrader source notebook from the reference cells and the rubric."""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..course import Course
from ..rubric import Rubric, load_rubric
from ..templates_env import render
from .reference_cells import CellSpec, ReferenceFormatError, parse_reference

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class BuildError(ValueError):
    pass


def _nbgrader(grade_id: str, *, grade=False, solution=False, locked=False, task=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": task}
    if points is not None:
        meta["points"] = points
    return meta


def _cell(spec: CellSpec, rubric: Rubric) -> nbformat.NotebookNode:
    v4 = nbformat.v4
    role, gid = spec.role, spec.grade_id
    if role == "markdown":
        return v4.new_markdown_cell(spec.source)
    if role == "answer":
        part = next((p for p in rubric.answer_parts if p.cell == gid), None)
        if part is None:
            raise BuildError(f"answer cell {gid!r} (line {spec.line}) has no reflection or inquiry part in the rubric")
        return v4.new_markdown_cell(spec.source, metadata={
            "nbgrader": _nbgrader(gid, grade=True, solution=True, points=part.points)})
    if role == "code":
        return v4.new_code_cell(spec.source)
    locked_meta = {"editable": False, "deletable": False}
    if role == "solution":
        return v4.new_code_cell(spec.source, metadata={"nbgrader": _nbgrader(gid, solution=True)})
    if role == "test":
        points = rubric.test_points().get(gid)
        if points is None:
            raise BuildError(f"test cell {gid!r} (line {spec.line}) has no points in the rubric's tests part")
        return v4.new_code_cell(spec.source, metadata={
            **locked_meta, "nbgrader": _nbgrader(gid, grade=True, locked=True, points=points)})
    tags = {"parameters": ["parameters"], "train": ["train"]}.get(role, [])
    meta = {**locked_meta, "nbgrader": _nbgrader(gid, locked=True)}
    if tags:
        meta["tags"] = tags
    return v4.new_code_cell(spec.source, metadata=meta)


def _task_cell(part) -> nbformat.NotebookNode:
    """Points the grader gives outside any cell (metric, timing) live in an nbgrader task cell,
    so the gradebook, formgrader and nbgrader's exports see every part of the rubric."""
    return nbformat.v4.new_markdown_cell(
        render("task_cell.md.j2", part=part).strip() + "\n",
        metadata={"nbgrader": _nbgrader(f"rubric_{part.id}", locked=True, task=True, points=part.points),
                  "editable": False, "deletable": False})


def _check_against_rubric(specs: list[CellSpec], rubric: Rubric, name: str) -> None:
    ids = {s.grade_id for s in specs}
    missing = [cell for cell in rubric.test_points() if cell not in ids]
    if missing:
        raise BuildError(f"{name}: the rubric scores test cells that the reference lacks: {', '.join(missing)}")
    for part in rubric.of_kind("timing"):
        if not any(s.role == part.cell for s in specs) and part.cell not in ids:
            raise BuildError(f"{name}: timing part {part.id!r} times cell {part.cell!r}, which the reference lacks")
    for part in rubric.answer_parts:
        if part.cell not in ids:
            raise BuildError(f"{name}: {part.kind} part {part.id!r} needs an answer cell id={part.cell}")
    if rubric.evaluates_artifacts and (not specs or specs[-1].role != "export"):
        raise BuildError(f"{name}: the last cell must be the locked export cell (# %% export): "
                         "the rubric scores what it exports")


def build_notebook(reference_source: str, rubric: Rubric, name: str = "<reference>") -> nbformat.NotebookNode:
    try:
        specs = parse_reference(reference_source, name)
    except ReferenceFormatError as exc:
        raise BuildError(str(exc)) from exc
    _check_against_rubric(specs, rubric, name)
    cells = [_cell(s, rubric) for s in specs]
    table = nbformat.v4.new_markdown_cell(render("rubric_table.md.j2", rubric=rubric).strip() + "\n")
    tasks = [_task_cell(p) for p in rubric.task_cell_parts()]
    first_md = 1 if specs[0].role == "markdown" else 0
    cells = cells[:first_md] + [table] + cells[first_md:-1] + tasks + cells[-1:]
    for index, cell in enumerate(cells):  # deterministic ids: grade id or position
        cell["id"] = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell-{index:02d}"
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": KERNELSPEC, "language_info": {"name": "python"},
        "autograder": {"assignment": rubric.assignment, "rubric_version": rubric.version}})
    nbformat.validate(nb)
    return nb


def render_assignment(course: Course, name: str) -> str:
    course.check_assignment(name)
    reference = course.reference_dir / f"{name}.py"
    if not reference.is_file():
        raise BuildError(f"no reference solution at {reference}")
    rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
    nb = build_notebook(reference.read_text(), rubric, str(reference))
    return nbformat.writes(nb) + "\n"


def build_assignment(course: Course, name: str) -> Path:
    target = course.source_notebook(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_assignment(course, name))
    return target


def stale_assignments(course: Course) -> list[str]:
    """Assignments whose committed source notebook differs from a fresh build."""
    stale = []
    for name in course.assignments:
        target = course.source_notebook(name)
        if not target.is_file() or target.read_text() != render_assignment(course, name):
            stale.append(name)
    return stale
