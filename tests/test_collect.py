"""collect(): intake of submissions from Canvas/Moodle zips, plain folders and nbgrader's exchange."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.intake import collect, detect_kind
from autograder.intake.collect import notebook_problem
from autograder.intake.timestamps import format_timestamp, parse_timestamp, zip_entry_time

A = "cnn_lab1"  # the assignment id used throughout


# -- builders ------------------------------------------------------------------------------


def notebook(answer: str = "model = build()", padding: int = 0) -> bytes:
    """A valid v4 notebook; the same answer gives the same bytes (fixed cell ids)."""
    cells = [new_markdown_cell("# CNN lab 1", id="title"), new_code_cell(answer + "\n#" + "x" * padding, id="answer")]
    return nbformat.writes(new_notebook(cells=cells)).encode()


def zip_time(date_time: tuple) -> datetime:
    """How collect reads a zip entry date without a zone: as local time."""
    return datetime(*date_time).astimezone(timezone.utc)


def write_zip(path: Path, entries: list[tuple[str, bytes, tuple]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content, date_time in entries:
            zf.writestr(zipfile.ZipInfo(name, date_time), content)
    return path


def tree_state(root: Path) -> dict[str, tuple[str, float]]:
    """Content hash and mtime of every file under root (or of root itself, if a file)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime) for p in files}


def set_mtime(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def submitted(course: Path, student: str) -> Path:
    return course / "submitted" / student / A / f"{A}.ipynb"


def reasons(report) -> dict[str, str]:
    return {r.source.rsplit("!", 1)[-1]: r.reason for r in report.rejected}


# -- Canvas --------------------------------------------------------------------------------

ON_TIME = (2024, 3, 1, 9, 0, 0)
FIRST = (2024, 3, 1, 10, 0, 0)
SECOND = (2024, 3, 1, 11, 30, 0)
LATE = (2024, 3, 3, 8, 0, 0)


@pytest.fixture
def canvas_zip(tmp_path: Path) -> Path:
    return write_zip(
        tmp_path / "submissions.zip",
        [
            ("doejane_1001_5001_cnn_lab1.ipynb", notebook("jane"), ON_TIME),
            ("smithjohn_late_1002_5002_CNN_Lab1.ipynb", notebook("john, late"), LATE),
            # a resubmission: Canvas renames the second upload of the same file name with '-1'
            ("leeann_1003_5003_cnn_lab1.ipynb", notebook("ann, first try"), FIRST),
            ("leeann_1003_5004_cnn_lab1-1.ipynb", notebook("ann, second try"), SECOND),
            ("LATE_anon_x7Yk2_5005_cnn_lab1.ipynb", notebook("anonymous"), LATE),
            # malformed submissions
            ("brokenbob_1006_5006_cnn_lab1.ipynb", b"{'cells': oops", ON_TIME),
            ("jsonjim_1007_5007_cnn_lab1.ipynb", json.dumps({"cells": []}).encode(), ON_TIME),
            ("bigbea_1008_5008_cnn_lab1.ipynb", notebook("big", padding=60_000), ON_TIME),
            ("textteo_1009_5009_cnn_lab1.txt", b"print('hi')", ON_TIME),
            ("oddotto_1010_5010_Untitled.ipynb", notebook("otto"), ON_TIME),
            ("binarybo_1011_5011_cnn_lab1.ipynb", b"\x89PNG\r\n\x1a\n\x00\xff", ON_TIME),
            ("v3vera_1012_5012_cnn_lab1.ipynb", json.dumps({"nbformat": 3, "worksheets": []}).encode(), ON_TIME),
            ("README_from_instructor.txt", b"not a submission", ON_TIME),
            ("__MACOSX/._doejane_1001_5001_cnn_lab1.ipynb", b"junk", ON_TIME),
        ],
    )


def test_canvas_zip(canvas_zip: Path, tmp_path: Path):
    course = tmp_path / "course"
    before = tree_state(canvas_zip)

    report = collect(canvas_zip, A, course, max_bytes=50_000)

    assert sorted(a.student for a in report.accepted) == ["1001", "1002", "1003", "anon_x7Yk2"]
    assert not report.skipped
    by_student = {a.student: a for a in report.accepted}
    # the later of Ann's two uploads wins; the earlier one is reported, not silently dropped
    ann = by_student["1003"]
    assert ann.source.endswith("!leeann_1003_5004_cnn_lab1-1.ipynb")
    assert ann.submitted_at == zip_time(SECOND)
    assert submitted(course, "1003").read_bytes() == notebook("ann, second try")
    # the late submission is collected with its own (late) time
    assert by_student["1002"].submitted_at == zip_time(LATE)
    timestamp = (course / "submitted" / "1002" / A / "timestamp.txt").read_text()
    assert parse_timestamp(timestamp) == zip_time(LATE)
    assert all(not a.replaced_previous for a in report.accepted)
    assert all(a.path == submitted(course, a.student) for a in report.accepted)

    why = reasons(report)
    assert why["leeann_1003_5003_cnn_lab1.ipynb"].startswith("duplicate in the same batch with an older time")
    assert why["brokenbob_1006_5006_cnn_lab1.ipynb"].startswith("not JSON")
    assert why["jsonjim_1007_5007_cnn_lab1.ipynb"] == "JSON but not a notebook: no 'nbformat' field"
    assert why["bigbea_1008_5008_cnn_lab1.ipynb"].startswith("too large")
    assert why["textteo_1009_5009_cnn_lab1.txt"].startswith("not a notebook file")
    assert why["oddotto_1010_5010_Untitled.ipynb"].startswith("file name 'Untitled.ipynb' does not look like")
    assert why["binarybo_1011_5011_cnn_lab1.ipynb"].startswith("not a notebook: not UTF-8")
    assert why["v3vera_1012_5012_cnn_lab1.ipynb"].startswith("notebook format v3")
    assert why["README_from_instructor.txt"].startswith("no student id")
    assert len(report.rejected) == 9  # the __MACOSX entry is not a submission at all
    for bad in ("1006", "1007", "1008", "1009", "1010"):
        assert not (course / "submitted" / bad).exists()

    assert tree_state(canvas_zip) == before


def test_canvas_zip_with_roster(canvas_zip: Path, tmp_path: Path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Student ID,LMS ID,Name\n"
        "jdoe,1001,\"Doe, Jane\"\n"  # matched by Canvas user id
        "jsmith,,John Smith\n"  # matched by name ('smithjohn' in the zip)
        "alee,1003,Ann Lee\n",
        encoding="utf-8-sig",
    )
    report = collect(canvas_zip, A, tmp_path / "course", roster=roster, max_bytes=50_000)

    assert sorted(a.student for a in report.accepted) == ["alee", "jdoe", "jsmith"]
    assert reasons(report)["LATE_anon_x7Yk2_5005_cnn_lab1.ipynb"].startswith("unknown student")


def test_two_uploads_at_the_same_time_take_the_later_upload(tmp_path: Path):
    """Canvas often stamps every entry with the zip's creation time: upload ids order them."""
    archive = write_zip(
        tmp_path / "s.zip",
        [
            ("leeann_1003_5004_cnn_lab1-1.ipynb", notebook("second"), ON_TIME),
            ("leeann_1003_5003_cnn_lab1.ipynb", notebook("first"), ON_TIME),
        ],
    )
    report = collect(archive, A, tmp_path / "course")
    assert [a.source.rsplit("!")[-1] for a in report.accepted] == ["leeann_1003_5004_cnn_lab1-1.ipynb"]
    assert "uploaded earlier" in report.rejected[0].reason


# -- Moodle --------------------------------------------------------------------------------


def test_moodle_zip(tmp_path: Path):
    archive = write_zip(
        tmp_path / "CNN-Lab 1-42.zip",
        [
            ("Jane Doe_1234567_assignsubmission_file_/cnn_lab1.ipynb", notebook("jane"), ON_TIME),
            ("Jane Doe_1234567_assignsubmission_onlinetext_/onlinetext.html", b"<p>see file</p>", ON_TIME),
            ("Jörg Müller_1234568_assignsubmission_file_/CNN Lab1.ipynb", notebook("jörg"), LATE),
            # Moodle without "download submissions in folders": the folder name is a prefix
            ("Ann Lee_1234569_assignsubmission_file_cnn_lab1.ipynb", notebook("ann"), FIRST),
            ("Ann Lee_1234569_assignsubmission_file_/notes.txt", b"my notes", FIRST),
        ],
    )
    before = tree_state(archive)

    assert detect_kind(archive) == "zip"
    report = collect(archive, A, tmp_path / "course")

    assert sorted(a.student for a in report.accepted) == ["1234567", "1234568", "1234569"]
    assert {a.student: a.submitted_at for a in report.accepted}["1234568"] == zip_time(LATE)
    assert sorted(r.reason.split(":")[0] for r in report.rejected) == ["not a notebook file"] * 2

    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\njdoe,Jane Doe\njmueller,\"Müller, Jörg\"\nalee,Ann Lee\n")
    report = collect(archive, A, tmp_path / "course2", roster=roster)
    assert sorted(a.student for a in report.accepted) == ["alee", "jdoe", "jmueller"]
    assert submitted(tmp_path / "course2", "jmueller").read_bytes() == notebook("jörg")

    assert tree_state(archive) == before


# -- plain folder --------------------------------------------------------------------------


def test_plain_folder(tmp_path: Path):
    src = tmp_path / "downloads"
    t1, t2 = datetime(2024, 3, 1, 9, tzinfo=timezone.utc), datetime(2024, 3, 2, 9, tzinfo=timezone.utc)
    layout = {
        f"alice/{A}.ipynb": notebook("alice"),
        f"bob/{A}/{A}.ipynb": notebook("bob"),
        "carol.ipynb": notebook("carol"),
        "dave/homework.ipynb": notebook("dave, wrong notebook"),
        f"erin/{A}.ipynb": notebook("erin, old"),
        f"erin/{A}/{A}.ipynb": notebook("erin, new"),
        "notes.txt": b"not a submission",
    }
    for rel, content in layout.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(content)
        set_mtime(src / rel, t1)
    set_mtime(src / f"erin/{A}/{A}.ipynb", t2)
    before = tree_state(src)

    assert detect_kind(src) == "folder"
    course = tmp_path / "course"
    report = collect(src, A, course)

    assert sorted(a.student for a in report.accepted) == ["alice", "bob", "carol", "erin"]
    assert all(a.submitted_at == (t2 if a.student == "erin" else t1) for a in report.accepted)
    assert submitted(course, "erin").read_bytes() == notebook("erin, new")
    why = {Path(r.source).relative_to(src).as_posix(): r.reason for r in report.rejected}
    assert why == {
        "dave": f"no notebook for '{A}' in this student's folder",
        f"erin/{A}.ipynb": why[f"erin/{A}.ipynb"],
    }
    assert why[f"erin/{A}.ipynb"].startswith("duplicate in the same batch with an older time")

    assert tree_state(src) == before


def test_roster_limits_folder_students(tmp_path: Path):
    src = tmp_path / "src"
    for student in ("alice", "mallory"):
        (src / student).mkdir(parents=True)
        (src / student / f"{A}.ipynb").write_bytes(notebook(student))
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id\nalice\nbob\n")

    report = collect(src, A, tmp_path / "course", roster=roster)

    assert [a.student for a in report.accepted] == ["alice"]
    assert report.rejected[0].reason == "unknown student: id 'mallory' not in roster roster.csv"


def test_roster_errors_are_raised(tmp_path: Path):
    roster = tmp_path / "roster.csv"
    roster.write_text("name,lms_id\nJane Doe,1001\n")
    with pytest.raises(ValueError, match="student_id"):
        collect(tmp_path, A, tmp_path / "course", roster=roster)
    roster.write_text("student_id,lms_id\njdoe,1001\njsmith,1001\n")
    with pytest.raises(ValueError, match="two students"):
        collect(tmp_path, A, tmp_path / "course", roster=roster)


# -- nbgrader exchange ---------------------------------------------------------------------


def exchange_submission(inbound: Path, student: str, assignment: str, when: datetime, content: bytes) -> Path:
    """An inbound folder as nbgrader's ExchangeSubmit writes it (default timestamp_format, UTC)."""
    timestamp = when.strftime("%Y-%m-%d %H:%M:%S.%f %Z")
    random_str = base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")
    folder = inbound / f"{student}+{assignment}+{timestamp}+{random_str}"
    folder.mkdir(parents=True)
    (folder / f"{assignment}.ipynb").write_bytes(content)
    (folder / "timestamp.txt").write_text(timestamp)
    (folder / "submission_secret.txt").write_text(f"secret-of-{student}-{timestamp}")
    return folder


def test_exchange_latest_submission_wins(tmp_path: Path):
    exchange = tmp_path / "exchange"
    inbound = exchange / "dl2024" / "inbound"
    early = datetime(2024, 3, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)
    late = datetime(2024, 3, 1, 17, 45, 0, tzinfo=timezone.utc)
    exchange_submission(inbound, "alice", A, late, notebook("alice v2"))  # made first: order is by time
    older = exchange_submission(inbound, "alice", A, early, notebook("alice v1"))
    exchange_submission(inbound, "bob", A, early, notebook("bob"))
    exchange_submission(inbound, "bob", "other_lab", late, notebook("bob, other assignment"))
    empty = inbound / f"carol+{A}+{format_timestamp(early)}+AAAAAAAAAAAA"
    empty.mkdir()
    before = tree_state(exchange)

    assert detect_kind(exchange, "dl2024") == "exchange"
    course = tmp_path / "course"
    report = collect(exchange, A, course, course_id="dl2024")

    assert {a.student: a.submitted_at for a in report.accepted} == {"alice": late, "bob": early}
    assert submitted(course, "alice").read_bytes() == notebook("alice v2")
    timestamp_txt = course / "submitted" / "alice" / A / "timestamp.txt"
    assert timestamp_txt.read_text() == "2024-03-01 17:45:00.000000 UTC"
    # nbgrader's release_feedback reads submission_secret.txt next to the notebook
    secret = (course / "submitted" / "alice" / A / "submission_secret.txt").read_text()
    assert secret == f"secret-of-alice-{late.strftime('%Y-%m-%d %H:%M:%S.%f %Z')}"
    why = {Path(r.source).relative_to(inbound).parts[0]: r.reason for r in report.rejected}
    assert why[older.name].startswith("duplicate in the same batch with an older time")
    assert why[empty.name] == f"no notebook for '{A}' in this submission"
    assert len(report.rejected) == 2

    assert tree_state(exchange) == before
    # auto-detection finds the only course without being told its id
    assert detect_kind(exchange) == "exchange"
    assert len(collect(exchange, A, course).skipped) == 2


# -- repeated collection -------------------------------------------------------------------


def test_collecting_twice_is_idempotent(canvas_zip: Path, tmp_path: Path):
    course = tmp_path / "course"
    first = collect(canvas_zip, A, course, max_bytes=50_000)
    state = tree_state(course)

    again = collect(canvas_zip, A, course, max_bytes=50_000)

    assert again.accepted == []
    assert sorted(r.source for r in again.skipped) == sorted(a.source for a in first.accepted)
    assert all(r.reason.startswith("already collected") for r in again.skipped)
    assert tree_state(course) == state
    assert not list(course.rglob(".attempts"))


def test_changed_resubmission_keeps_the_earlier_one(tmp_path: Path):
    src, course = tmp_path / "src", tmp_path / "course"
    (src / "alice").mkdir(parents=True)
    path = src / "alice" / f"{A}.ipynb"
    t1, t2 = datetime(2024, 3, 1, 9, tzinfo=timezone.utc), datetime(2024, 3, 2, 9, tzinfo=timezone.utc)
    path.write_bytes(notebook("first"))
    set_mtime(path, t1)
    assert not collect(src, A, course).accepted[0].replaced_previous

    path.write_bytes(notebook("second"))
    set_mtime(path, t2)
    report = collect(src, A, course)

    [accepted] = report.accepted
    assert accepted.replaced_previous and accepted.submitted_at == t2
    assert submitted(course, "alice").read_bytes() == notebook("second")
    attempts = course / "submitted" / "alice" / A / ".attempts"
    [kept] = attempts.iterdir()
    assert kept.name == "2024-03-01T090000.000000Z"
    assert (kept / f"{A}.ipynb").read_bytes() == notebook("first")
    assert parse_timestamp((kept / "timestamp.txt").read_text()) == t1

    # a different but older file does not displace the newer submission
    path.write_bytes(notebook("stale copy"))
    set_mtime(path, t1)
    report = collect(src, A, course)
    assert not report.accepted and report.rejected[0].reason.startswith("older")
    assert submitted(course, "alice").read_bytes() == notebook("second")


# -- pieces --------------------------------------------------------------------------------


def test_notebook_problems():
    assert notebook_problem(notebook()) is None
    nb = json.loads(notebook())
    del nb["cells"][0]["id"]  # written by an older 4.x tool: still fine
    assert notebook_problem(json.dumps(nb).encode()) is None
    nb["cells"][0]["cell_type"] = "bogus"
    assert notebook_problem(json.dumps(nb).encode()).startswith("invalid notebook")
    assert notebook_problem(b"[1, 2]") == "JSON but not a notebook: no 'nbformat' field"


def test_zip_entry_time_prefers_the_utc_extended_timestamp():
    info = zipfile.ZipInfo("x.ipynb", (2024, 3, 1, 9, 0, 0))
    assert zip_entry_time(info) == zip_time((2024, 3, 1, 9, 0, 0))
    when = datetime(2024, 3, 1, 9, 0, 7, tzinfo=timezone.utc)
    info.extra = struct.pack("<HHBi", 0x5455, 5, 1, int(when.timestamp()))
    assert zip_entry_time(info) == when


def test_timestamps_round_trip_in_nbgrader_format():
    when = datetime(2024, 3, 1, 9, 0, 0, 250000, tzinfo=timezone.utc)
    assert format_timestamp(when) == "2024-03-01 09:00:00.250000 UTC"
    assert parse_timestamp(format_timestamp(when)) == when
    assert parse_timestamp("2024-03-01 10:00:00.250000 CET") == when


def test_bad_arguments_raise(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        collect(tmp_path / "missing", A, tmp_path / "course")
    with pytest.raises(ValueError, match="kind"):
        collect(tmp_path, A, tmp_path / "course", kind="email")
    with pytest.raises(ValueError, match="assignment"):
        collect(tmp_path, "../escape", tmp_path / "course")
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(ValueError, match="not a readable zip"):
        collect(tmp_path / "not.zip", A, tmp_path / "course", kind="zip")
