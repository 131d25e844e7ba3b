"""Round two of the sandbox and integrity rules, tested directly on crafted inputs (fast):
walks of student-written folders, publishing, disk bounds, bounded parsing, intake identities,
escaping, timing of instructor cells, and the evaluator's shuffled passes. The same classes are
attacked end to end by tests/test_adversarial.py."""

from __future__ import annotations

import io
import os
import socket
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest
from rich.console import Console

from autograder.grading.execute import cell_duration, seal
from autograder.grading.record import publish_notebook
from autograder.grading.results import GRADER_ERROR, GradeResult
from autograder.grading.sanitize import InvalidSubmission, read_submission
from autograder.sandbox import Limits, SandboxSpec, bwrap_available, run_sandboxed
from autograder.sandbox.seccomp import filter_program
from autograder.sandbox.tree import MAX_DEPTH, allocated_bytes, remove_at, sweep

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap (bwrap) is not installed")


def _deep(folder: Path, levels: int, name: str = "d" * 200) -> None:
    """levels nested folders of 200-character names (far beyond PATH_MAX), a link at the bottom."""
    fd = os.open(folder, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir(name, dir_fd=fd)
        new = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    os.symlink("/etc/passwd", "bottom", dir_fd=fd)
    os.close(fd)


def _odd(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                found.append(path)
    return found


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A folder as a hostile notebook could leave it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "result.ipynb").write_text("{}")
    _deep(work, 3000)                               # deeper than PATH_MAX and the recursion limit
    (work / "link").symlink_to("/etc/shadow")
    (work / "loop").symlink_to(work)
    os.mkfifo(work / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(work / "sock"))
    (work / "locked" / "inner").mkdir(parents=True)
    (work / "locked" / "inner" / "link").symlink_to("/root")
    (work / "locked" / "keep.txt").write_text("mine")
    os.chmod(work / "locked" / "inner", 0)
    os.chmod(work / "locked", 0)
    return work


def test_seal_removes_every_link_and_special_file_however_deep_and_never_raises(planted):
    removed = seal(planted)
    assert {"link", "loop", "fifo", "sock", "locked/inner/link"} <= set(removed)
    assert any(r.startswith("d" * 200) for r in removed)   # the part beyond MAX_DEPTH
    assert _odd(planted) == []
    assert (planted / "locked" / "keep.txt").read_text() == "mine"   # readable again
    depth = max(len(Path(p).relative_to(planted).parts) for p, _, _ in os.walk(planted))
    assert depth <= MAX_DEPTH and max(len(p) for p, _, _ in os.walk(planted)) < 4096


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_lending_a_folder_never_follows_links_and_survives_deep_trees(planted, tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("grader's")
    (planted / "to_target").symlink_to(target)
    uid = 2_000_000_123
    removed = sweep(planted, owner=(uid, uid))
    assert target.stat().st_uid == 0
    assert os.lstat(planted / "to_target").st_uid == uid and os.lstat(planted / "result.ipynb").st_uid == uid
    assert any(r.startswith("d" * 200) for r in removed)
    sweep(planted, owner=(0, 0))
    assert os.lstat(planted / "result.ipynb").st_uid == 0


def test_removing_a_tree_far_deeper_than_the_descriptor_budget(tmp_path):
    _deep(tmp_path, 2000, name="x")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert remove_at(fd, "x")
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []


def _result(tmp_path: Path, flags=()) -> GradeResult:
    return GradeResult(student="s1", assignment="a1", status="crashed", message="", profile="tiny",
                       output_dir=str(tmp_path / "attempt"), flags=list(flags))


class _Course:
    def __init__(self, root: Path):
        self.autograded_dir = root / "autograded"


def test_publish_only_regular_files_of_clean_runs(tmp_path):
    course = _Course(tmp_path)
    work = tmp_path / "attempt" / "work"
    work.mkdir(parents=True)
    target = course.autograded_dir / "s1" / "a1" / "a1.ipynb"
    secret = tmp_path / "gradebook.db"
    secret.write_text("SQLite format 3")

    (work / "a1.ipynb").symlink_to(secret)
    assert not publish_notebook(course, _result(tmp_path)) and not target.exists()
    (work / "a1.ipynb").unlink()
    os.mkfifo(work / "a1.ipynb")                       # would block a plain open
    assert not publish_notebook(course, _result(tmp_path)) and not target.exists()
    (work / "a1.ipynb").unlink()
    (work / "a1.ipynb").write_text('{"cells": []}')
    assert not publish_notebook(course, _result(tmp_path, [GRADER_ERROR]))   # the run ended in an exception
    target.parent.mkdir(parents=True)
    target.symlink_to(secret)                          # a link at the target is replaced, not followed
    assert publish_notebook(course, _result(tmp_path))
    assert not target.is_symlink() and target.read_text() == '{"cells": []}' and secret.read_text() == "SQLite format 3"


# ---------------------------------------------------------------- disk

FALLOCATE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long]
fd = os.open("reserve", os.O_CREAT | os.O_WRONLY, 0o600)
for mode in (0, 1, 3):           # plain, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE
    ok = libc.fallocate(fd, mode, 0, 1 << 30) == 0
    print("fallocate", mode, "DONE" if ok else os.strerror(ctypes.get_errno()))
print("blocks", os.fstat(fd).st_blocks)
ok = libc.syscall(425, 8, 0) >= 0   # io_uring_setup
print("io_uring", "DONE" if ok else os.strerror(ctypes.get_errno()))
"""


@needs_bwrap
def test_fallocate_and_io_uring_are_refused_in_the_sandbox(tmp_path):
    tmp_path.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    out = run_sandboxed([sys.executable, "-c", FALLOCATE], SandboxSpec(workdir=work), Limits(wall_seconds=30))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("fallocate")] == [
        f"fallocate {m} Operation not supported" for m in (0, 1, 3)]
    assert "blocks 0" in lines and "io_uring Function not implemented" in lines


@needs_bwrap
def test_the_watchdog_bounds_allocated_disk_across_files(tmp_path):
    tmp_path.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    code = textwrap.dedent("""
        import os, time
        for i in range(64):                 # 64 files of 4 MiB, each under the file-size limit
            with open(f"f{i}", "wb") as fh:
                fh.write(os.urandom(4 << 20))
                fh.flush(); os.fsync(fh.fileno())
            time.sleep(0.05)
        print("wrote everything")
    """)
    limits = Limits(wall_seconds=60, max_file_bytes=8 << 20, max_disk_bytes=32 << 20)
    out = run_sandboxed([sys.executable, "-c", code], SandboxSpec(workdir=work), limits)
    assert out.killed_reason == "disk" and "wrote everything" not in out.stdout
    assert out.peak_disk_bytes > 32 << 20
    used, complete = allocated_bytes(work)
    assert complete and used < 256 << 20   # bounded: limit plus what one poll interval can add


def test_too_many_entries_count_as_over_the_limit(tmp_path):
    for i in range(50):
        (tmp_path / f"f{i}").touch()
    assert allocated_bytes(tmp_path, max_entries=20)[1] is False
    assert allocated_bytes(tmp_path, max_entries=100)[1] is True


def test_the_seccomp_program_is_known_only_where_the_numbers_are():
    assert filter_program("x86_64") and filter_program("aarch64")
    assert filter_program("sparc64") is None
    assert len(filter_program("x86_64")) % 8 == 0


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("content, words", [
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"cells": [], "metadata": {"x": ' + "[" * 500 + "]" * 500 + '}, "nbformat": 4, "nbformat_minor": 5}', "nested"),
    ("not json", "not valid JSON"),
])
def test_any_parse_failure_of_a_submission_is_invalid(tmp_path, content, words):
    path = tmp_path / "a.ipynb"
    path.write_text(content)
    with pytest.raises(InvalidSubmission, match=words):
        read_submission(path)


def test_a_submission_that_is_a_link_or_fifo_is_invalid(tmp_path):
    real = tmp_path / "real.ipynb"
    real.write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (tmp_path / "link.ipynb").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.ipynb")
    for name in ("link.ipynb", "fifo.ipynb"):
        with pytest.raises(InvalidSubmission):
            read_submission(tmp_path / name)


def test_collect_rejects_a_deeply_nested_notebook_alone(tmp_path):
    from autograder.intake.collect import collect

    source = tmp_path / "in"
    for student, text in [("alice", "[" * 100_000 + "]" * 100_000),
                          ("bob", nbformat.writes(nbformat.v4.new_notebook())),
                          ("carol", '{"nbformat": 4, "x": ' + "[" * 300 + "]" * 300 + "}")]:
        (source / student).mkdir(parents=True)
        (source / student / "hw1.ipynb").write_text(text)
    report = collect(source, "hw1", tmp_path / "course", kind="folder")
    assert [a.student for a in report.accepted] == ["bob"]
    reasons = {Path(r.source).parent.name: r.reason for r in report.rejected}
    assert set(reasons) == {"alice", "carol"} and all("nested" in r for r in reasons.values()), reasons


# ---------------------------------------------------------------- identities at intake


def _canvas_zip(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in entries.items():
            z.writestr(name, text)
    return path


def _nb(marker: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(marker))
    return nbformat.writes(nb)


def test_names_match_without_compatibility_folding():
    from autograder.intake.lms_names import name_keys

    assert name_keys("Doe, Jane") & name_keys("Jane Doe")
    assert name_keys("Müller, Jürgen") & name_keys("jurgen muller")           # accents still fold
    assert not name_keys("Ｊａｎｅ Ｄｏｅ") & name_keys("Jane Doe")             # fullwidth does not
    assert not name_keys("J\u0430ne Doe") & name_keys("Jane Doe")              # nor Cyrillic a
    assert not name_keys("ﬁona") & name_keys("fiona")                          # nor a ligature


def test_an_upload_from_an_unknown_id_cannot_take_a_known_students_name(tmp_path):
    from autograder.intake.collect import collect

    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,lms_id,name\njdoe,111,\"Doe, Jane\"\nbsmith,,Bob Smith\n")
    archive = _canvas_zip(tmp_path / "sub.zip", {
        "doejane_999_1_hw1.ipynb": _nb("impostor"),          # Jane's name, someone else's id
        "ｄｏｅｊａｎｅ_998_2_hw1.ipynb": _nb("fullwidth"),    # a fullwidth copy of her name
        "smithbob_222_3_hw1.ipynb": _nb("bob"),              # Bob has no LMS id in the roster: by name
    })
    report = collect(archive, "hw1", tmp_path / "course", roster=roster)
    assert [a.student for a in report.accepted] == ["bsmith"]
    reasons = " | ".join(r.reason for r in report.rejected)
    assert "held for review" in reasons and "unknown student" in reasons, reasons
    folder = tmp_path / "course" / "submitted" / "bsmith" / "hw1"
    assert (folder / "lms_id.txt").read_text() == "222"


def test_a_replacement_from_another_lms_id_is_held_for_review(tmp_path):
    from autograder.intake.collect import collect

    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\nbsmith,Bob Smith\n")
    first = _canvas_zip(tmp_path / "a.zip", {"smithbob_222_1_hw1.ipynb": _nb("bob's")})
    collect(first, "hw1", tmp_path / "course", roster=roster)
    later = _canvas_zip(tmp_path / "b.zip", {"smithbob_333_2_hw1.ipynb": _nb("someone else's")})
    report = collect(later, "hw1", tmp_path / "course", roster=roster)
    assert report.accepted == [] and "held for review" in report.rejected[0].reason
    notebook = tmp_path / "course" / "submitted" / "bsmith" / "hw1" / "hw1.ipynb"
    assert "bob's" in notebook.read_text()
    both = _canvas_zip(tmp_path / "c.zip", {"smithbob_444_3_hw1.ipynb": _nb("x"), "smithbob_555_4_hw1.ipynb": _nb("y")})
    report = collect(both, "hw1", tmp_path / "other", roster=roster)
    assert report.accepted == [] and all("several LMS ids" in r.reason for r in report.rejected)
    # a student the roster gives two LMS ids may upload from either
    two_ids = tmp_path / "two.csv"
    two_ids.write_text("student_id,lms_id,name\nbsmith,444,Bob Smith\nbsmith,555,Bob Smith\n")
    report = collect(both, "hw1", tmp_path / "third", roster=two_ids)
    assert [a.student for a in report.accepted] == ["bsmith"]
    again = _canvas_zip(tmp_path / "d.zip", {"smithbob_444_5_hw1.ipynb": _nb("z")})
    assert [a.student for a in collect(again, "hw1", tmp_path / "third", roster=two_ids).accepted] == ["bsmith"]


def test_discovery_grades_only_valid_ascii_student_ids(tmp_path):
    from autograder.grading.batch import discover, held_student_folders

    class Course:
        submitted_dir = tmp_path / "submitted"

    for student in ("alice", "\u0430lice", "al ice", "bob"):
        folder = Course.submitted_dir / student / "hw1"
        folder.mkdir(parents=True)
        (folder / "hw1.ipynb").write_text("{}")
    assert [s.student for s in discover(Course, "hw1")] == ["alice", "bob"]
    assert held_student_folders(Course, "hw1") == ["al ice", "\u0430lice"]


# ---------------------------------------------------------------- display


MARKUP = "[/x] [bold]boom[/bold] [link=file:///etc/shadow]x[/link] [/]"


def test_student_text_in_tables_is_not_markup():
    from autograder import cli

    results = [GradeResult(student="[red]eve[/red]", assignment="a", status="failed", message=MARKUP, profile="tiny")]
    for table in (cli.summary_table(results), cli.demo_table("a", results)):
        console = Console(width=300, record=True, file=io.StringIO())
        console.print(table)
        text = console.export_text()
        assert "[red]eve[/red]" in text and "[/x] [bold]" in text


def test_the_error_handler_escapes_the_message(monkeypatch):
    from autograder import cli

    console = Console(width=300, record=True, file=io.StringIO())
    monkeypatch.setattr(cli, "console", console)

    def boom(args):
        raise FileNotFoundError(f"no file {MARKUP}")

    parser = cli.parser()
    monkeypatch.setattr(cli, "parser", lambda: _Fixed(parser, boom))
    assert cli.main(["build"]) == 2
    assert f"error: no file {MARKUP}" in console.export_text()


class _Fixed:
    def __init__(self, parser, func):
        self.parser, self.func = parser, func

    def parse_args(self, argv):
        import argparse
        return argparse.Namespace(func=self.func)


# ---------------------------------------------------------------- timing


def _cell(gid: str | None, duration: float, tags=(), solution=False):
    cell = nbformat.v4.new_code_cell("")
    if gid:
        cell.metadata["nbgrader"] = {"grade_id": gid, "solution": solution}
    if tags:
        cell.metadata["tags"] = list(tags)
    cell.metadata["papermill"] = {"status": "completed", "duration": duration}
    return cell


def test_instructor_cells_beyond_their_reference_duration_count_as_training():
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("imports", 2.0), _cell("train_model", 0.1, solution=True), _cell(None, 0.01, ["train"]),
                _cell("test_training", 9.0), _cell("export", 1.0)]
    reference = {"imports": 2.0, "test_training": 0.1, "export": 1.5}
    assert cell_duration(nb, "train") == pytest.approx(0.11)                         # without a reference
    # test_training may take 1.5 x 0.1 + 0.25 s; the other 8.6 s were training
    assert cell_duration(nb, "train", reference) == pytest.approx(0.11 + 9.0 - 0.4)
    nb.cells[3].metadata["papermill"]["duration"] = 0.3
    assert cell_duration(nb, "train", reference) == pytest.approx(0.11)              # noise is not training


# ---------------------------------------------------------------- the evaluator's passes


def test_shuffled_passes_defeat_labels_memorised_in_file_order(tmp_path):
    import torch

    from autograder.grading.evaluate import _shuffled_predictions
    from autograder.student import export_for_grading

    labels = torch.arange(300) % 10
    table = torch.zeros(65536, 10)
    table[:300] = torch.nn.functional.one_hot(labels, 10).float()

    class Memo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", table)
            self.lin = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.lin(x.flatten(1)) * 0 + self.table[: x.shape[0]]

    class Honest(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10] * 1.0

    images = torch.randn(300, 1, 2, 2)
    rng = torch.Generator().manual_seed(0)
    for name, model, example in (("memo", Memo(), images), ("honest", Honest(), torch.randn(300, 1, 4, 4))):
        export_for_grading(model, example[:8], tmp_path / name)
        program = torch.export.load(tmp_path / name / "model.pt2")
        predictions, flags = _shuffled_predictions(program.module(), example, rng)
        if name == "memo":
            assert float((predictions == labels).float().mean()) < 0.5 and flags
        else:
            assert torch.equal(predictions, example.flatten(1)[:, :10].argmax(1)) and flags == []


def test_a_staged_private_hidden_set_replaces_mnists_public_test_split(tmp_path):
    """QMNIST's extra digits under the hidden root are the full profile's test split (test50k:
    the rows after the first 10,000, which reproduce MNIST's public test set)."""
    import numpy as np

    from autograder.datasets.registry import load_hidden_split

    raw = tmp_path / "QMNIST" / "raw"
    raw.mkdir(parents=True)
    n = 10_003
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[10_000:, 14, 14] = 255
    labels = np.zeros((n, 8), dtype=">i4")
    labels[10_000:, 0] = [3, 1, 4]
    (raw / "qmnist-test-images-idx3-ubyte").write_bytes(
        np.array([0x0803, n, 28, 28], dtype=">i4").tobytes() + images.tobytes())
    (raw / "qmnist-test-labels-idx2-int").write_bytes(
        np.array([0x0C02, n, 8], dtype=">i4").tobytes() + labels.tobytes())
    split = load_hidden_split("mnist", "full", tmp_path, secret=0)
    assert split.labels.tolist() == [3, 1, 4] and tuple(split.images.shape) == (3, 1, 32, 32)


def test_random_batches_cover_every_image_once():
    import torch

    from autograder.grading.evaluate import _batches

    for n in (1, 2, 3, 216, 257, 360, 10_000):
        for seed in range(100):
            sizes = _batches(n, torch.Generator().manual_seed(seed))
            assert sum(sizes) == n and (n < 2 or min(sizes) >= 2) and max(sizes) <= 257, (n, seed, sizes)
