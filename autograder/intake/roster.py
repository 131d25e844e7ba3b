"""Student ids: checking them, and mapping LMS ids and names to them through a roster CSV.

Roster CSV (UTF-8, header row, column names case-insensitive):
    student_id  required: the id used in the course folder (nbgrader's student id)
    lms_id      optional: the Canvas user id / Moodle participant id
    name        optional: the name as the LMS shows it ('Doe, Jane' or 'Jane Doe')
A student may have several rows (several LMS ids). A row with only a student_id still
declares a known student: with a roster, folder and exchange submissions from anyone else
are rejected.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .lms_names import name_keys

# Student ids become folder names under submitted/; nbgrader's exchange also forbids '*'.
_SAFE_ID = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*")


def valid_student_id(student: str) -> bool:
    return bool(_SAFE_ID.fullmatch(student))


def sanitize_lms_id(lms_id: str) -> str:
    """A student id made from an LMS id, when there is no roster: only safe characters."""
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", lms_id).lstrip(".") or "_"


class Roster:
    def __init__(
        self, path: Path, students: set[str], by_lms_id: dict[str, str], by_name: dict[str, str | None]
    ):
        self.path = path
        self.students = students
        self._by_lms_id = by_lms_id
        self._by_name = by_name  # None marks a name shared by several students
        self.lms_ids = {student: lms for lms, student in by_lms_id.items()}
        self.all_lms_ids: dict[str, set[str]] = {}
        for lms, student in by_lms_id.items():
            self.all_lms_ids.setdefault(student, set()).add(lms)
        self.names: dict[str, str] = {}

    @classmethod
    def load(cls, path: Path) -> Roster:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets add a BOM
            rows = list(csv.DictReader(fh))
        by_lms_id: dict[str, str] = {}
        by_name: dict[str, str | None] = {}
        students: set[str] = set()
        names: dict[str, str] = {}
        for line, row in enumerate(rows, start=2):
            row = {_column(k): (v or "").strip() for k, v in row.items() if k}
            student, lms_id, name = (row.get(k, "") for k in ("student_id", "lms_id", "name"))
            where = f"roster {path}, line {line}"
            if not valid_student_id(student):
                raise ValueError(f"{where}: missing or unusable student_id {student!r}")
            if lms_id and by_lms_id.setdefault(lms_id, student) != student:
                raise ValueError(f"{where}: lms_id {lms_id!r} given to two students")
            for key in name_keys(name):
                by_name[key] = student if by_name.get(key, student) == student else None
            students.add(student)
            names[student] = name
        roster = cls(path, students, by_lms_id, by_name)
        roster.names = names
        return roster

    def resolve_lms(self, lms_id: str, name: str) -> str:
        """The student id for an LMS id, else for the LMS name; LookupError says why not.

        A name is only a fallback for a student the roster gives no LMS id: when the name fits a
        student whose LMS ids the roster knows, an upload from another id is someone else's
        (a look-alike or copied name) and is refused for a human to look at."""
        if lms_id in self._by_lms_id:
            return self._by_lms_id[lms_id]
        matches = {self._by_name.get(key, "") for key in name_keys(name)} - {""}
        if None in matches or len(matches) > 1:
            raise LookupError(f"name {name!r} fits several students in roster {self.path.name}")
        if matches:
            student = matches.pop()
            if self.all_lms_ids.get(student):
                raise LookupError(
                    f"held for review: name {name!r} fits {student}, but lms id {lms_id!r} is not theirs "
                    f"in roster {self.path.name} (theirs: {', '.join(sorted(self.all_lms_ids[student]))})")
            return student
        shown = f"lms id {lms_id!r}" + (f" / name {name!r}" if name else "")
        raise LookupError(f"unknown student: {shown} not in roster {self.path.name}")

    def knows_lms_id(self, lms_id: str) -> bool:
        return lms_id in self._by_lms_id

    def resolve_student(self, ident: str) -> str:
        """A student id from a folder or exchange name: a roster student_id, or an lms_id."""
        if ident in self.students:
            return ident
        if ident in self._by_lms_id:
            return self._by_lms_id[ident]
        raise LookupError(f"unknown student: id {ident!r} not in roster {self.path.name}")


def _column(header: str) -> str:
    return re.sub(r"[\s-]+", "_", header.strip().casefold())
