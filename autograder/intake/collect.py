"""collect: take student submissions into the course folder, in nbgrader's layout.

Each accepted notebook lands in <course_root>/submitted/<student>/<assignment>/<assignment>.ipynb
with its submission time in timestamp.txt beside it. Sources are only read, never changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
from nbformat.reader import NotJSONError, parse_json
from nbformat.validator import normalize

from ..safejson import MAX_DEPTH, depth
from .lms_names import looks_like_assignment
from .report import Accepted, CollectReport, Rejected
from .roster import Roster, sanitize_lms_id, valid_student_id
from .sources import Found, Incoming, exchange_items, find_inbound, folder_items, zip_items
from .timestamps import format_timestamp, parse_timestamp

__all__ = ["Accepted", "CollectReport", "Rejected", "collect", "detect_kind"]

KINDS = ("auto", "exchange", "folder", "zip")
DEFAULT_MAX_BYTES = 20 * 2**20
ATTEMPTS_DIR = ".attempts"
SUBMISSION_INFO = "submission.json"  # beside the notebook: the file taken, LMS id, name, late mark
LMS_ID_FILE = "lms_id.txt"  # the LMS id that uploaded the submission beside it

_SAFE_ASSIGNMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@dataclass
class _Checked:
    """An incoming notebook that passed every check."""

    student: str
    content: bytes
    submitted_at: datetime
    source: str
    order: int
    companions: tuple[Path, ...]
    filename: str = ""
    lms: object = None  # the LmsEntry: its id, name and late mark are kept in submission.json
    group: str | None = None
    lms_id: str | None = None  # who uploaded it, as the LMS says: kept beside the submission
    lms_verified: bool = False  # the roster gives this LMS id to this student (not a name match)


def collect(
    source: Path,
    assignment: str,
    course_root: Path,
    *,
    kind: str = "auto",
    course_id: str | None = None,
    roster: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    notebook_ids: dict[str, frozenset[str]] | None = None,
) -> CollectReport:
    """Collect one assignment's submissions from source into course_root/submitted/.

    kind: "exchange" (nbgrader's inbound folder), "folder", "zip" (Canvas or Moodle bulk download),
    or "auto" to tell them apart. Bad files are reported in the result, never raised; bad
    arguments (missing source, unreadable zip or roster) raise ValueError / FileNotFoundError.
    notebook_ids: assignment -> its nbgrader grade ids (`course_notebook_ids`); given, a notebook
    is recognised by its cells whatever its file name (else by a name like the assignment's).
    """
    if notebook_ids is not None and assignment not in notebook_ids:
        raise ValueError(f"notebook_ids has no grade ids for {assignment!r}")
    any_name = notebook_ids is not None
    source, course_root = Path(source), Path(course_root)
    if not _SAFE_ASSIGNMENT.fullmatch(assignment):
        raise ValueError(f"assignment {assignment!r} is not usable as a folder name")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if not source.exists():
        raise FileNotFoundError(f"submission source not found: {source}")
    known = Roster.load(Path(roster)) if roster else None
    kind = detect_kind(source, course_id) if kind == "auto" else kind

    if kind == "zip":
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, IsADirectoryError) as err:
            raise ValueError(f"{source} is not a readable zip archive: {err}") from err
        with archive:
            found = zip_items(archive, str(source))
            return _collect_found(found, assignment, course_root, known, max_bytes, notebook_ids)
    if kind == "exchange":
        inbound = find_inbound(source, course_id)
        if inbound is None:
            where = f"{course_id}/inbound" if course_id else "inbound/ or <course_id>/inbound"
            raise ValueError(f"no nbgrader inbound folder in {source} (looked for {where})")
        found = exchange_items(inbound, assignment, any_name)
    else:
        if not source.is_dir():
            raise ValueError(f"{source} is not a folder")
        found = folder_items(source, assignment, any_name)
    return _collect_found(found, assignment, course_root, known, max_bytes, notebook_ids)


def detect_kind(source: Path, course_id: str | None = None) -> str:
    """'zip' for a zip file, 'exchange' for a folder holding an nbgrader inbound/, else 'folder'."""
    if source.is_file():
        if zipfile.is_zipfile(source):
            return "zip"
        raise ValueError(f"{source} is a file but not a zip archive")
    return "exchange" if find_inbound(source, course_id) else "folder"


def _collect_found(
    found: Found, assignment: str, course_root: Path, roster: Roster | None, max_bytes: int,
    notebook_ids: dict[str, frozenset[str]] | None = None,
) -> CollectReport:
    report = CollectReport()
    checked: list[_Checked] = []
    for item in found:
        try:  # one file that breaks a check is rejected alone, never the whole batch
            result = item if isinstance(item, Rejected) else _check(item, assignment, roster, max_bytes, notebook_ids)
        except Exception as err:  # noqa: BLE001 - untrusted input
            result = Rejected(item.source, f"could not be checked: {type(err).__name__}: {str(err)[:200]}")
        (report.rejected if isinstance(result, Rejected) else checked).append(result)
    checked = _unambiguous(checked, assignment, report.rejected)
    for submission in _latest_per_student(checked, report.rejected):
        try:
            bucket, outcome = _install(submission, assignment, course_root)
        except Exception as err:  # noqa: BLE001
            bucket, outcome = "rejected", Rejected(submission.source, f"could not be installed: {err}")
        getattr(report, bucket).append(outcome)
    report.accepted.sort(key=lambda a: a.student)
    report.rejected.sort(key=lambda r: r.source)
    report.skipped.sort(key=lambda r: r.source)
    return report


# -- checks --------------------------------------------------------------------------------


def _check(
    item: Incoming, assignment: str, roster: Roster | None, max_bytes: int,
    notebook_ids: dict[str, frozenset[str]] | None = None,
) -> _Checked | Rejected:
    """Cheapest checks first: who, file name, size; the content is read last."""
    try:
        student = _student_of(item, roster)
    except LookupError as err:
        return Rejected(item.source, str(err.args[0]))
    if not item.filename.lower().endswith(".ipynb"):
        return Rejected(item.source, f"not a notebook file: {item.filename!r} does not end in .ipynb")
    if notebook_ids is None and item.check_name and not looks_like_assignment(item.filename, assignment):
        why = f"file name {item.filename!r} does not look like assignment {assignment!r}"
        return Rejected(item.source, why)
    if item.size > max_bytes:
        return Rejected(item.source, _too_large(item.size, max_bytes))
    try:
        content = item.read(max_bytes + 1)  # the declared size may lie (zip entries)
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as err:
        # RuntimeError: zipfile's way of saying the entry is encrypted
        return Rejected(item.source, f"unreadable: {err}")
    if len(content) > max_bytes:
        return Rejected(item.source, _too_large(len(content), max_bytes, at_least=True))
    problem = notebook_problem(content) or (notebook_ids and not_this_assignment(content, assignment, notebook_ids))
    if problem:
        return Rejected(item.source, problem)
    lms_id = item.lms.lms_id if item.lms is not None else None
    verified = lms_id is not None and roster is not None and roster.knows_lms_id(lms_id)
    return _Checked(student, content, item.submitted_at, item.source, item.order, item.companions,
                    item.filename, item.lms, item.group, lms_id, verified)


def _student_of(item: Incoming, roster: Roster | None) -> str:
    if item.lms is not None:
        if roster is not None:
            return roster.resolve_lms(item.lms.lms_id, item.lms.name)
        return sanitize_lms_id(item.lms.lms_id)
    if not item.student or not valid_student_id(item.student):
        raise LookupError(f"no student id: {item.student!r} is not usable as a student id")
    return roster.resolve_student(item.student) if roster is not None else item.student


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"too large: {more}{_size(size)}, the limit is {_size(limit)}"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def notebook_problem(content: bytes) -> str | None:
    """Why content is not a readable nbformat v4 notebook, or None if it is."""
    try:
        text = content.decode("utf-8")  # .ipynb files are UTF-8 JSON
    except UnicodeDecodeError:
        return "not a notebook: not UTF-8 text (binary file?)"
    try:
        data = parse_json(text)
    except NotJSONError as err:
        return f"not JSON: {err.__cause__ or err}"
    except RecursionError:
        return f"not a notebook: JSON nested more than {MAX_DEPTH} levels deep"
    if depth(data, MAX_DEPTH) > MAX_DEPTH:
        return f"not a notebook: JSON nested more than {MAX_DEPTH} levels deep"
    if not isinstance(data, dict) or "nbformat" not in data:
        return "JSON but not a notebook: no 'nbformat' field"
    if data["nbformat"] != 4:
        version = data["nbformat"]
        return f"notebook format v{version}: only v4 is accepted (re-save it in current Jupyter)"
    try:
        with warnings.catch_warnings():
            # Cells without ids (older 4.x tools) only warn; normalize() adds them to a copy.
            warnings.simplefilter("ignore")
            _, notebook = normalize(data)
            nbformat.validate(notebook)
    except Exception as err:  # noqa: BLE001 - untrusted input: any failure here means invalid
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"invalid notebook: {first_line[:200]}"
    return None


def grade_ids(notebook: Path) -> frozenset[str]:
    """The nbgrader grade ids of a (released or source) notebook."""
    nb = nbformat.read(notebook, as_version=4)
    return frozenset(c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells) - {None}


def not_this_assignment(content: bytes, assignment: str, notebook_ids: dict[str, frozenset[str]]) -> str | None:
    """Why a valid notebook is not this assignment's, judged by its cells' nbgrader grade ids
    (assignments share some, e.g. 'export': the assignment whose ids it matches best must be
    this one, with at least half of them), or None."""
    cells = json.loads(content.decode("utf-8")).get("cells", [])
    ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells if isinstance(c, dict)} - {None}
    if not ids:
        return f"no nbgrader cells: this notebook was not made from {assignment!r}'s released notebook"

    def overlap(name: str) -> float:
        want = notebook_ids[name]
        return len(ids & want) / len(ids | want) if want else 0.0

    best = max(notebook_ids, key=lambda name: (overlap(name), name == assignment))
    if best != assignment and overlap(best) > overlap(assignment):
        return f"holds {best!r}'s cells, not {assignment!r}'s"
    mine = len(ids & notebook_ids[assignment])
    if mine * 2 < len(notebook_ids[assignment]):
        return (f"holds only {mine} of {assignment!r}'s {len(notebook_ids[assignment])} nbgrader cells: "
                "not its released notebook")
    return None


def _unambiguous(checked: list[_Checked], assignment: str, rejected: list[Rejected]) -> list[_Checked]:
    """Two notebooks of the assignment in one submission: neither is taken, and the student is
    told why (which one to grade is theirs to say)."""
    groups: dict[tuple, list[_Checked]] = defaultdict(list)
    for c in checked:
        if c.group is not None:
            groups[(c.student, c.group)].append(c)
    ambiguous = {id(c) for members in groups.values() if len(members) > 1 for c in members}
    for members in groups.values():
        if len(members) > 1:
            names = ", ".join(sorted(m.filename for m in members))
            for m in members:
                rejected.append(Rejected(m.source, f"ambiguous: {len(members)} notebooks in this submission hold "
                                                   f"{assignment!r}'s cells ({names}); keep one and collect again"))
    return [c for c in checked if id(c) not in ambiguous]


# -- choosing and installing ---------------------------------------------------------------


def _latest_per_student(checked: list[_Checked], rejected: list[Rejected]) -> list[_Checked]:
    """The latest submission of each student; the others are reported as older duplicates."""
    by_student: dict[str, list[_Checked]] = defaultdict(list)
    for submission in checked:
        by_student[submission.student].append(submission)
    latest = []
    for student, submissions in sorted(by_student.items()):
        uploaders = sorted({s.lms_id for s in submissions if s.lms_id is not None})
        if len(uploaders) > 1 and not all(s.lms_verified for s in submissions):
            # someone else's upload matched this student by name: a human decides
            for held in submissions:
                rejected.append(Rejected(held.source, _held_reason(student, uploaders)))
            continue
        submissions.sort(key=lambda s: (s.submitted_at, s.order, s.source), reverse=True)
        winner = submissions[0]
        latest.append(winner)
        for older in submissions[1:]:
            rejected.append(Rejected(older.source, _duplicate_reason(student, older, winner)))
    return latest


def _duplicate_reason(student: str, older: _Checked, winner: _Checked) -> str:
    same_time = older.submitted_at == winner.submitted_at
    when = "the same time but uploaded earlier" if same_time else "an older time"
    return (
        f"duplicate in the same batch with {when}: {student}'s later submission "
        f"{winner.source} ({format_timestamp(winner.submitted_at)}) was taken"
    )


def _held_reason(student: str, uploaders: list[str]) -> str:
    return (f"held for review: submissions for {student} come from several LMS ids ({', '.join(uploaders)}); "
            "check who uploaded which, then collect the right one alone")


def _install(
    submission: _Checked, assignment: str, course_root: Path
) -> tuple[str, Accepted | Rejected]:
    """Write a submission into submitted/, keeping any different earlier one under .attempts/.

    Returns the report list it belongs to ('accepted', 'skipped', 'rejected') and the entry.
    """
    folder = course_root / "submitted" / submission.student / assignment
    notebook = folder / f"{assignment}.ipynb"
    try:
        replaced = False
        earlier_id = _read_lms_id(folder)
        if submission.lms_id is not None and not submission.lms_verified \
                and earlier_id not in (None, submission.lms_id):
            return "rejected", Rejected(
                submission.source,
                f"held for review: {submission.student}'s submission in {folder} came from LMS id "
                f"{earlier_id!r}, this one from {submission.lms_id!r}; kept the earlier one",
            )
        if notebook.is_file():
            if _sha256(notebook.read_bytes()) == _sha256(submission.content):
                why = f"already collected: identical to {notebook}"
                return "skipped", Rejected(submission.source, why)
            previous_time = _read_timestamp(folder)
            if previous_time and submission.submitted_at < previous_time:
                return "rejected", Rejected(
                    submission.source,
                    f"older ({format_timestamp(submission.submitted_at)}) than the submission already "
                    f"collected in {folder} ({format_timestamp(previous_time)}); kept that one",
                )
            _move_aside(folder, previous_time)
            replaced = True
        folder.mkdir(parents=True, exist_ok=True)
        for companion in submission.companions:
            _write_atomic(folder / companion.name, companion.read_bytes())
        _write_atomic(notebook, submission.content)
        _write_atomic(folder / "timestamp.txt", format_timestamp(submission.submitted_at).encode())
        _write_atomic(folder / SUBMISSION_INFO, json.dumps(_info(submission), indent=1).encode())
        if submission.lms_id is not None:
            _write_atomic(folder / LMS_ID_FILE, submission.lms_id.encode())
    except OSError as err:
        return "rejected", Rejected(submission.source, f"could not write into {folder}: {err}")
    s = submission
    return "accepted", Accepted(s.student, notebook, s.submitted_at, s.source, replaced)


def _info(submission: _Checked) -> dict:
    """What the source said about a submission beyond its content and time: the file the student
    named, and an LMS's id, name and late mark (export and the reports read them)."""
    lms = submission.lms
    info = {"file": submission.filename, "source": submission.source}
    if lms is not None:
        info.update(lms=lms.lms, lms_id=lms.lms_id, name=lms.name, late=lms.late)
    return info


def _read_lms_id(folder: Path) -> str | None:
    try:
        return (folder / LMS_ID_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, ValueError):
        return None


def _read_timestamp(folder: Path) -> datetime | None:
    try:
        return parse_timestamp((folder / "timestamp.txt").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _move_aside(folder: Path, previous_time: datetime | None) -> None:
    """Move everything of the earlier submission into .attempts/<its time>/, so nothing is lost."""
    name = previous_time.strftime("%Y-%m-%dT%H%M%S.%fZ") if previous_time else "unknown-time"
    target = folder / ATTEMPTS_DIR / name
    n = 1
    while target.exists():
        n += 1
        target = folder / ATTEMPTS_DIR / f"{name}-{n}"
    target.mkdir(parents=True)
    for entry in folder.iterdir():
        if entry.name != ATTEMPTS_DIR:
            entry.rename(target / entry.name)  # same file system: a rename, no copy


def _write_atomic(path: Path, content: bytes) -> None:
    # Readers (the grading pipeline) never see half a file, even if collect is interrupted.
    temporary = path.with_name(f".{path.name}.collecting")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def course_notebook_ids(course) -> dict[str, frozenset[str]] | None:
    """Each assignment's grade ids, from its released notebook (the work folder's, else the
    course's committed one) or its source notebook; an assignment with none is left out
    (collect then goes by file names)."""
    ids = {}
    for name in course.assignments:
        committed = course.root / course.release_dir_name / name / f"{name}.ipynb"
        for path in (course.release_notebook(name), committed, course.source_notebook(name)):
            if path.is_file():
                ids[name] = grade_ids(path)
                break
    return ids
