"""sanitize: read a submission and restore the instructor's cells with nbgrader's own preprocessor.

nbgrader's OverwriteCells restores locked cells (tests, with hidden tests; parameters; export)
from source cells and checksums it finds in the gradebook. A grading task must not open the
gradebook, so an adapter serves the same source cells from assignments/<a>/<a>.ipynb.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, OverwriteCells

from ..build.notebook import KERNELSPEC
from ..safejson import loads, read_bytes


class InvalidSubmission(ValueError):
    """The file cannot be graded at all (not JSON, not a notebook, another assignment)."""


@dataclass
class Sanitized:
    notebook: nbformat.NotebookNode
    restored: list[str] = field(default_factory=list)   # grade ids whose source was put back
    added: list[str] = field(default_factory=list)      # grade ids missing from the submission
    warnings: list[str] = field(default_factory=list)


class _SourceCells:
    """The part of nbgrader's Gradebook API that OverwriteCells uses, read from a source notebook."""

    def __init__(self, source_nb: nbformat.NotebookNode):
        self.cells = {}
        self.nodes = {}
        self.order = []
        for cell in source_nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if "grade_id" not in meta:
                continue
            gid = meta["grade_id"]
            self.order.append(gid)
            self.nodes[gid] = cell
            self.cells[gid] = SimpleNamespace(
                name=gid, cell_type=cell.cell_type, locked=utils.is_locked(cell), source=cell.source,
                checksum=utils.compute_checksum(cell), max_score=float(meta.get("points", 0) or 0),
                is_grade=utils.is_grade(cell), is_solution=utils.is_solution(cell), is_task=utils.is_task(cell))

    def find_source_cell(self, grade_id, notebook_id, assignment_id):
        if grade_id not in self.cells:
            raise MissingEntry()
        return self.cells[grade_id]

    find_graded_cell = find_source_cell

    def find_notebook(self, notebook_id, assignment_id):
        cells = [self.cells[g] for g in self.order]
        return SimpleNamespace(
            source_cells=cells,
            grade_cells=[c for c in cells if c.is_grade],
            solution_cells=[c for c in cells if c.is_solution],
            task_cells=[c for c in cells if c.is_task])


class _Restore(OverwriteCells):
    """OverwriteCells with the source notebook instead of a database connection."""

    def __init__(self, source_cells: _SourceCells, **kw):
        super().__init__(**kw)
        self.gradebook = source_cells
        self.changes: list[tuple[str, str]] = []

    def preprocess(self, nb, resources):
        self.notebook_id = resources["nbgrader"]["notebook"]
        self.assignment_id = resources["nbgrader"]["assignment"]
        return super(OverwriteCells, self).preprocess(nb, resources)

    def report_change(self, name, attr, old, new):
        self.changes.append((name, attr))


def _add_missing(nb: nbformat.NotebookNode, source: _SourceCells) -> list[str]:
    """Put back every locked or graded source cell the student deleted, after the nearest
    preceding source cell that is still there (nbgrader's own version handles graded cells
    only, and only after other graded cells)."""
    added = []
    for position, gid in enumerate(source.order):
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        info = source.cells[gid]
        if gid in ids or not (info.locked or info.is_grade or info.is_task):
            continue
        before = [g for g in source.order[:position] if g in ids]
        index = ids.index(before[-1]) + 1 if before else 0
        cell = copy.deepcopy(source.nodes[gid])
        if info.is_solution:  # a deleted answer cell comes back empty, never with the reference answer
            cell.source = ""
        nb.cells.insert(index, cell)
        added.append(gid)
    return added


# Tags the executor acts on: papermill injects the grading parameters after the cell tagged
# `parameters`, and the cell tagged `train` is timed. Only the instructor's cells may carry them.
ROLE_TAGS = frozenset({"parameters", "injected-parameters", "train"})


def _drop_impostors(nb: nbformat.NotebookNode, source: _SourceCells) -> list[str]:
    """A cell is the instructor's only if it carries a grade id of the source notebook, and only
    the first such cell per id: nbgrader metadata on any other cell (an unknown or duplicated
    grade id, a `locked` flag on a cell of one's own) is removed, so the cell counts as the
    student's. Role tags are removed from every cell here; _restore_roles puts them back."""
    seen, notes = set(), []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid in source.cells and gid not in seen:
            seen.add(gid)
        elif meta is not None:
            del cell.metadata["nbgrader"]
            notes.append(f"nbgrader metadata removed from a cell that is not the instructor's ({gid!r})")
        tags = cell.metadata.get("tags", [])
        if set(tags) & ROLE_TAGS:
            cell.metadata["tags"] = [t for t in tags if t not in ROLE_TAGS]
    return notes


def _restore_roles(nb: nbformat.NotebookNode, source: _SourceCells) -> None:
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        source_tags = source.nodes[gid].metadata.get("tags", []) if gid in source.nodes else []
        wanted = [t for t in source_tags if t in ROLE_TAGS]
        tags = [t for t in cell.metadata.get("tags", []) if t not in ROLE_TAGS] + wanted
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)


def _released(cell) -> str:
    """What students received for a source cell: nbgrader's own hidden-test removal."""
    cell = copy.deepcopy(cell)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source.strip()


MAX_SUBMISSION_BYTES = 64 * 2**20   # a submitted notebook; collect refuses more than 20 MiB


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The submitted notebook, or InvalidSubmission saying why not. Any failure to read or parse
    the file is the file's problem (invalid), never the grader's: it is opened without following
    a link, must be a regular file, and is parsed with bounded size and nesting depth."""
    name = Path(path).name
    try:
        data = read_bytes(path, MAX_SUBMISSION_BYTES)
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSubmission(f"{name} is not a text file ({exc.reason})") from exc
    except FileNotFoundError:
        raise InvalidSubmission(f"{name} was not found (no notebook in the submission folder)") from None
    except (OSError, ValueError) as exc:
        raise InvalidSubmission(f"{name} cannot be read: {_first_line(exc)}") from None
    try:
        raw = loads(text)
    except ValueError as exc:
        raise InvalidSubmission(f"{name} is not a readable notebook: {exc}; "
                                "was it saved as a notebook (.ipynb)?") from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise InvalidSubmission(f"{name} is JSON but not a Jupyter notebook (no cells)")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - untrusted input: any failure here means invalid
        raise InvalidSubmission(f"{name} is not a valid notebook: {_first_line(exc)}") from None
    return nb


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def sanitize(submission_nb: nbformat.NotebookNode, source_nb: nbformat.NotebookNode, assignment: str) -> Sanitized:
    nb = copy.deepcopy(submission_nb)  # the submission stays as it was
    source_cells = _SourceCells(source_nb)
    impostors = _drop_impostors(nb, source_cells)
    originals = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    if not set(originals) & set(source_cells.cells):
        raise InvalidSubmission(f"this notebook has none of the cells of {assignment!r}; is it the right assignment?")
    restore = _Restore(source_cells)
    nb, _ = restore.preprocess(nb, {"nbgrader": {"notebook": assignment, "assignment": assignment}})
    result = Sanitized(nb, warnings=impostors)
    # Report only real edits: a released test cell lacks its hidden tests, which is no edit.
    changed = {name for name, attr in restore.changes if attr == "checksum"}
    result.restored = sorted(g for g in changed if originals.get(g, "").strip() != _released(source_cells.nodes[g]))
    result.added = _add_missing(nb, source_cells)
    _restore_roles(nb, source_cells)
    # The kernel is the grader's choice, not the student's (a wrong kernel name must not break grading).
    if nb.metadata.get("kernelspec", {}).get("name") != KERNELSPEC["name"]:
        result.warnings.append(f"kernel {nb.metadata.get('kernelspec', {}).get('name')!r} replaced by python3")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    ClearOutput().preprocess(nb, {})   # outputs the student left behind are not evidence of anything
    return result
