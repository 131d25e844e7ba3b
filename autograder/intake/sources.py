"""Finding the incoming files in each kind of source: nbgrader's exchange, a plain folder, an LMS zip.

Nothing here reads a notebook or writes anything; collect.py checks and installs what is found.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from .lms_names import LmsEntry, looks_like_assignment, parse_lms_entry
from .report import Rejected
from .timestamps import parse_timestamp, zip_entry_time


@dataclass
class Incoming:
    """One file that may be a student's submission."""

    source: str  # where it came from, as shown in reports
    filename: str  # the student's own file name, for the name check
    submitted_at: datetime  # aware, UTC
    size: int  # as declared by the file system or the zip directory
    read: Callable[[int], bytes]  # reads at most that many bytes of the content
    student: str | None = None  # a student id given by the folder layout...
    lms: LmsEntry | None = None  # ...or the LMS's idea of who submitted it
    check_name: bool = True  # False where the file is named after the student, not the assignment
    order: int = 0  # breaks ties between equal times (Canvas upload ids grow)
    companions: tuple[Path, ...] = ()  # files to copy alongside (nbgrader's submission_secret.txt)
    group: str | None = None  # one submission (a folder): two notebooks of the assignment in it are ambiguous


Found = Iterator["Incoming | Rejected"]

# nbgrader's ExchangeSubmit ends inbound names with '+' and 12 url-safe base64 characters.
_RANDOM_SUFFIX = re.compile(r"[A-Za-z0-9_-]{12}")
_ZIP_JUNK = re.compile(r"(^|/)(__MACOSX/|\.ipynb_checkpoints/|\.DS_Store$|Thumbs\.db$|desktop\.ini$)")
_ZIP_UTF8_FLAG = 0x800


# -- nbgrader exchange ---------------------------------------------------------------------


def find_inbound(source: Path, course_id: str | None) -> Path | None:
    """nbgrader's inbound folder in source: <course_id>/inbound, inbound/, or source itself."""
    if source.name == "inbound" and source.is_dir():
        return source
    candidates = [source / course_id / "inbound"] if course_id else []
    candidates.append(source / "inbound")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if course_id:
        return None
    courses = sorted(p for p in source.glob("*/inbound") if p.is_dir())
    if len(courses) > 1:
        names = ", ".join(p.parent.name for p in courses)
        raise ValueError(f"{source} is an exchange with several courses ({names}): pass course_id")
    return courses[0] if courses else None


def exchange_items(inbound: Path, assignment: str, any_name: bool = False) -> Found:
    """Submissions in inbound/, named '<student>+<assignment>+<timestamp>[+<random>]'."""
    marker = f"+{assignment}+"
    for entry in sorted(inbound.iterdir()):
        if marker not in entry.name:
            continue  # another assignment's submission
        student, stamp = entry.name.split(marker, 1)
        if not entry.is_dir():
            yield Rejected(str(entry), "not a submission folder")
            continue
        try:
            when = _exchange_time(entry, stamp)
        except (ValueError, OSError) as err:
            yield Rejected(str(entry), f"unreadable submission time: {err}")
            continue
        notebooks = _assignment_notebooks([entry], assignment, any_name)
        if not notebooks:
            yield Rejected(str(entry), f"no notebook for {assignment!r} in this submission")
        secret = entry / "submission_secret.txt"  # nbgrader's release_feedback needs it later
        companions = (secret,) if secret.is_file() else ()
        for notebook in notebooks:
            yield _file_incoming(notebook, when, student=student, companions=companions,
                                 check_name=not any_name, group=str(entry))


def _exchange_time(folder: Path, stamp: str) -> datetime:
    # nbgrader's collect orders by the time in the folder name; timestamp.txt holds the same text.
    head, _, tail = stamp.rpartition("+")
    text = head if head and _RANDOM_SUFFIX.fullmatch(tail) else stamp
    try:
        return parse_timestamp(text)
    except ValueError:
        timestamp_txt = folder / "timestamp.txt"
        if not timestamp_txt.is_file():
            raise
        return parse_timestamp(timestamp_txt.read_text(encoding="utf-8"))


# -- plain folder --------------------------------------------------------------------------


def folder_items(root: Path, assignment: str, any_name: bool = False) -> Found:
    """<student>/<assignment>.ipynb, <student>/<assignment>/<assignment>.ipynb, <student>.ipynb."""
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _student_folder(entry, assignment, any_name)
        elif entry.suffix.lower() == ".ipynb":
            if entry.stem.casefold() == assignment.casefold():
                why = "no student id: top-level notebooks must be named <student>.ipynb"
                yield Rejected(str(entry), why)
            else:
                yield _file_incoming(entry, student=entry.stem, check_name=False)


def _student_folder(folder: Path, assignment: str, any_name: bool = False) -> Found:
    notebooks = _assignment_notebooks([folder, folder / assignment], assignment, any_name)
    if not notebooks:
        yield Rejected(str(folder), f"no notebook for {assignment!r} in this student's folder")
    for notebook in notebooks:
        yield _file_incoming(notebook, _folder_time(notebook, assignment), student=folder.name,
                             check_name=not any_name, group=str(notebook.parent))


def _folder_time(notebook: Path, assignment: str) -> datetime | None:
    # A copy of an nbgrader submitted/ folder keeps its submission times in timestamp.txt.
    timestamp_txt = notebook.parent / "timestamp.txt"
    if notebook.parent.name == assignment and timestamp_txt.is_file():
        try:
            return parse_timestamp(timestamp_txt.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            pass
    return None  # the file's mtime


def _assignment_notebooks(folders: list[Path], assignment: str, any_name: bool = False) -> list[Path]:
    """The notebooks named exactly <assignment>.ipynb, or else those named plausibly like it;
    with any_name, every notebook (collect then recognises the assignment's by its cells)."""
    existing = [f for f in folders if f.is_dir()]
    if any_name:
        return [p for f in existing for p in sorted(f.glob("*.ipynb")) if not p.name.startswith(".") and p.is_file()]
    exact = [f / f"{assignment}.ipynb" for f in existing if (f / f"{assignment}.ipynb").is_file()]
    if exact:
        return exact
    return [
        p
        for f in existing
        for p in sorted(f.glob("*.ipynb"))
        if not p.name.startswith(".") and p.is_file() and looks_like_assignment(p.name, assignment)
    ]


# -- LMS zip -------------------------------------------------------------------------------


def zip_items(archive: zipfile.ZipFile, label: str) -> Found:
    """Each file of a Canvas or Moodle bulk download; the zip's entry names never become paths here."""
    for info in archive.infolist():
        name = _entry_name(info)
        if info.is_dir() or _ZIP_JUNK.search(name):
            continue
        source = f"{label}!{name}"
        entry = parse_lms_entry(name)
        if entry is None:
            why = "no student id: the name fits neither Canvas nor Moodle submission naming"
            yield Rejected(source, why)
            continue
        yield Incoming(
            source,
            entry.filename,
            zip_entry_time(info),
            info.file_size,
            partial(_read_entry, archive, info),
            lms=entry,
            order=entry.upload_id,
            group=f"moodle:{entry.lms_id}" if entry.lms == "moodle" else None,
        )


def _entry_name(info: zipfile.ZipInfo) -> str:
    # Without the UTF-8 flag Python decodes names as cp437, but many zippers write UTF-8 anyway.
    if info.flag_bits & _ZIP_UTF8_FLAG:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    with archive.open(info) as fh:
        return fh.read(limit)


# -- files ---------------------------------------------------------------------------------


def _file_incoming(path: Path, when: datetime | None = None, **fields) -> Incoming | Rejected:
    """A file on disk; submitted when given, else at its modification time."""
    try:
        stat = path.stat()
    except OSError as err:
        return Rejected(str(path), f"unreadable: {err.strerror or err}")
    when = when or datetime.fromtimestamp(stat.st_mtime, timezone.utc)
    return Incoming(str(path), path.name, when, stat.st_size, partial(_read_file, path), **fields)


def _read_file(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)
