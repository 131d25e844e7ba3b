"""What instructors and students see, from one real graded run of four LeNet-5 notebooks in an
instructor's own course folder (course_config.py with a due date and nbgrader's late penalty):
collect from a Canvas zip and a folder, grade, then status, manual grades in the gradebook,
publish, export for Canvas, nbgrader's own feedback command, formgrader, and the pages' layout
in a real browser."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.cli import main
from autograder.course import load_course
from autograder.demo import cohort
from autograder.grading.record import latest_results

from .conftest import REPO, SANDBOXED, known_reference_time

A = "lenet5_mnist"
DUE = "2026-10-05 23:59:00 UTC"
STUDENTS = ("alice_reference", "bob_weaker", "carol_raises", "zoe_copies_alice")
pytestmark = pytest.mark.slow


def _zip_entry(zf, name: str, when: datetime, content: bytes) -> None:
    info = zipfile.ZipInfo(name, when.astimezone().timetuple()[:6])   # zip dates are local time
    zf.writestr(info, content)


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_client):
    """An instructor's course folder (its own course_config.py with a due date and the 'zero' late
    penalty; the repository's references and rubrics), built and released, four submissions
    collected (three from a Canvas zip, one from a folder), graded in the sandbox by the CLI on the
    session's cluster, reached by its address as a farm of runners sharing the folder is."""
    root = tmp_path_factory.mktemp("course")
    root.chmod(0o755)
    config = (REPO / "course_config.py").read_text()
    edited = config.replace("DUE_DATES = {}", f"DUE_DATES = {{{A!r}: {DUE!r}}}").replace(
        'LATE_PENALTY = "none"', 'LATE_PENALTY = "zero"')
    assert edited.count(DUE) == 1 and 'LATE_PENALTY = "zero"' in edited
    (root / "course_config.py").write_text(edited)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for folder in ("reference", "rubrics"):
        (root / folder).symlink_to(REPO / folder)

    def cli(*args) -> int:
        return main(["--course", str(root), *args])

    assert cli("build", A) == 0 and cli("release", A) == 0
    course = load_course(root)
    known_reference_time(course, "tiny", 5.0)   # the demo measures references; this test is about publishing
    notebooks = cohort(nbformat.read(course.source_notebook(A), as_version=4),
                       nbformat.read(course.release_notebook(A), as_version=4))
    text = {s: nbformat.writes(notebooks[s]).encode() for s in ("alice_reference", "bob_weaker", "carol_raises")}
    text["zoe_copies_alice"] = text["alice_reference"]            # the same written answer: a copy pair
    on_time, late = datetime(2026, 10, 5, 12, tzinfo=timezone.utc), datetime(2026, 10, 7, 9, tzinfo=timezone.utc)
    inbox = root.parent / "inbox"
    inbox.mkdir()
    with zipfile.ZipFile(inbox / "canvas.zip", "w") as zf:
        _zip_entry(zf, "referencealice_1001_5001_lenet5_mnist.ipynb", on_time, text["alice_reference"])
        _zip_entry(zf, "weakerbob_1002_5002_Untitled.ipynb", on_time, text["bob_weaker"])
        _zip_entry(zf, "copieszoe_LATE_1004_5004_lenet5_mnist.ipynb", late, text["zoe_copies_alice"])
    roster = inbox / "roster.csv"
    roster.write_text("student_id,lms_id,name\nalice_reference,1001,Alice Reference\n"
                      "bob_weaker,1002,Bob Weaker\nzoe_copies_alice,1004,Zoe Copies\n")
    folder = inbox / "folder" / "carol_raises"
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").write_bytes(text["carol_raises"])
    os.utime(folder / f"{A}.ipynb", (on_time.timestamp(), on_time.timestamp()))
    assert cli("collect", str(inbox / "canvas.zip"), A, "--roster", str(roster)) == 0
    assert cli("collect", str(inbox / "folder"), A) == 0
    assert cli("grade", A, "--scheduler", shared_client.scheduler.address, "--shared-folder",
               *([] if SANDBOXED else ["--unsandboxed"])) == 0
    results = {r.student: r for r in latest_results(course, A)}
    assert set(results) == set(STUDENTS)
    return SimpleNamespace(root=root, course=course, cli=cli, results=results)


def feedback_page(run, student: str) -> str:
    return (run.course.feedback_dir / student / A / f"{A}.html").read_text()


def report_text(run) -> str:
    return (run.root / "reports" / f"{A}.html").read_text()


def assert_private(text: str, student: str, run, where: str) -> None:
    """The privacy rule for anything a student reads."""
    for other in set(STUDENTS) - {student}:
        assert other not in text, f"{where}: names {other}"
    assert str(run.root) not in text and "/tmp/" not in text, f"{where}: a server path"
    for internal in ("result.json", "attempts/", "worker-", "raw score", "confidence", "similarity to the reference",
                     "HIDDEN TESTS", "injected-parameters", "artifact_dir = &quot;/", 'artifact_dir = "/'):
        assert internal not in text, f"{where}: grader internal {internal!r}"


# ---- intake and the gradebook ------------------------------------------------------------------

def test_submission_times_due_date_and_late_penalty_reach_the_gradebook(run):
    with Gradebook(run.course.db_url, run.course.course_id) as gb:
        assert gb.find_assignment(A).duedate == datetime(2026, 10, 5, 23, 59)
        subs = {s: gb.find_submission(A, s) for s in STUDENTS}
        assert subs["zoe_copies_alice"].timestamp == datetime(2026, 10, 7, 9)
        assert {s for s, sub in subs.items() if sub.total_seconds_late > 0} == {"zoe_copies_alice"}
        zoe = subs["zoe_copies_alice"]
        # LATE_PENALTY = "zero": nbgrader's LateSubmissionPlugin takes the whole score
        assert zoe.score > 0 and zoe.late_submission_penalty == pytest.approx(zoe.score)
        assert subs["alice_reference"].late_submission_penalty == 0
    subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=run.root, check=True, capture_output=True)
    rows = {r["student_id"]: r for r in csv.DictReader((run.root / "grades.csv").open())}
    assert float(rows["zoe_copies_alice"]["late_submission_penalty"]) == pytest.approx(float(rows["zoe_copies_alice"]["raw_score"]))
    assert "late" in feedback_page(run, "zoe_copies_alice").lower()
    assert "Late:" not in feedback_page(run, "alice_reference")
    assert "1 late" in report_text(run)


def test_every_task_cell_has_its_comment_in_the_gradebook(run):
    with Gradebook(run.course.db_url, run.course.course_id) as gb:
        for student, result in run.results.items():
            for cell in ("rubric_accuracy", "rubric_timing"):
                comment = gb.find_comment(cell, A, A, student).auto_comment
                assert comment and re.match(r"^(\d+(\.\d+)?/\d+|pending): ", comment), (student, cell, comment)
        measured = run.results["alice_reference"].evaluation["test"]["accuracy"]
        assert f"{measured:.3f}" in gb.find_comment("rubric_accuracy", A, A, "alice_reference").auto_comment


def test_status_says_per_student_and_what_is_left(run, capsys):
    assert run.cli("status", A) == 0
    out = capsys.readouterr().out
    lines = {s: next(line for line in out.splitlines() if s in line) for s in STUDENTS}
    assert "after the due date" in lines["zoe_copies_alice"]
    assert all("after the due date" not in lines[s] for s in STUDENTS if s != "zoe_copies_alice")
    assert "failed" in lines["carol_raises"] and "2026-10-05" in lines["carol_raises"]
    waiting = [s for s, r in run.results.items() if r.needs_review]
    assert waiting and f"to do: review {len(waiting)} submission(s) in formgrader, then: autograder publish {A}" in out


# ---- privacy ----------------------------------------------------------------------------------

def test_feedback_pages_keep_students_apart_and_hide_internals(run):
    for student in STUDENTS:
        assert_private(feedback_page(run, student), student, run, f"feedback of {student}")
    zoe = feedback_page(run, "zoe_copies_alice")
    assert "near-duplicate of another student" in zoe
    # the instructor's report shows the pair
    assert "near-duplicate of alice_reference&#39;s answer" in report_text(run)
    assert "near-duplicate of zoe_copies_alice&#39;s answer" in report_text(run)


def test_nbgrader_generate_feedback_publishes_no_grader_internals(run):
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", A, "--force"], cwd=run.root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for student in STUDENTS:
        files = sorted(p.relative_to(run.course.feedback_dir / student / A).as_posix()
                       for p in (run.course.feedback_dir / student / A).rglob("*") if p.is_file())
        assert files == [f"{A}.html"], files   # no attempts/, no result.json
        page = feedback_page(run, student)
        assert 'id="toc"' in page and '<section class="part"' not in page   # nbgrader's page, not ours
        assert_private(page, student, run, f"nbgrader's feedback of {student}")
    assert "two convolutions with 6 and 16 channels" not in feedback_page(run, "alice_reference")   # hidden test code
    # our own feedback comes back with one command
    assert run.cli("publish", A) == 0
    assert all('<section class="part"' in feedback_page(run, s) for s in STUDENTS)


# ---- manual grades flow everywhere -----------------------------------------------------------

def _waiting_reflection(report: str) -> int:
    m = re.search(r'id="waiting">To review, per part: [^<]*?reflection (\d+)', report)
    return int(m.group(1)) if m else 0


def test_manual_scores_and_comments_win_in_feedback_csv_and_report(run, capsys):
    carol = run.results["carol_raises"]
    auto_reflection = next(p.points for p in carol.parts if p.id == "reflection")
    before = _waiting_reflection(report_text(run))
    assert before == sum(1 for r in run.results.values() if next(p for p in r.parts if p.id == "reflection").needs_review)
    with Gradebook(run.course.db_url, run.course.course_id) as gb:   # what formgrader writes
        grade = gb.find_grade("reflection", A, A, "carol_raises")
        grade.manual_score, grade.needs_manual_grade = 4.0, False
        gb.find_comment("reflection", A, A, "carol_raises").manual_comment = "Good terms; next time, explain why."
        gb.find_grade("rubric_accuracy", A, A, "bob_weaker").manual_score = 8.0
        gb.db.commit()
    assert run.cli("publish", A) == 0

    page = feedback_page(run, "carol_raises")
    assert "Your instructor gave 4 of 4 points." in page and "Good terms; next time, explain why." in page
    total = carol.score - auto_reflection + 4
    assert f"Score: {total:g} / 24" in page
    assert "Your instructor gave 8 of 10 points." in feedback_page(run, "bob_weaker")
    rows = {r["student"]: r for r in csv.DictReader((run.root / "grades" / f"{A}.csv").open())}
    assert rows["carol_raises"]["reflection"] == "4" and float(rows["carol_raises"]["score"]) == pytest.approx(total)
    assert rows["bob_weaker"]["accuracy"] == "8"
    report = report_text(run)
    carol_row = report[report.index('carol_raises</a></td>'):].split("</tr>")[0]
    assert "4 <span" in carol_row and "(manual)" in carol_row
    assert _waiting_reflection(report) == before - 1
    assert_private(page, "carol_raises", run, "feedback after manual grading")


def test_canvas_export_fills_ids_from_the_zip_or_refuses(run, capsys, tmp_path):
    out = run.root / "grades" / f"{A}-canvas.csv"
    assert run.cli("export", A, "--canvas") == 2     # carol came from a folder: no Canvas id known
    said = capsys.readouterr().out
    assert "carol_raises" in said and "alice_reference" not in said.split("no Canvas user id is known for:")[1]
    assert not out.exists()
    roster = tmp_path / "carol.csv"
    roster.write_text("student_id,lms_id,name\ncarol_raises,1003,Carol Raises\n")
    assert run.cli("export", A, "--canvas", "--roster", str(roster)) == 0
    rows = {r["SIS User ID"]: r for r in csv.DictReader(out.open()) if r["Student"] != "Points Possible"}
    assert {s: rows[s]["ID"] for s in STUDENTS} == {"alice_reference": "1001", "bob_weaker": "1002",
                                                     "carol_raises": "1003", "zoe_copies_alice": "1004"}
    assert rows["carol_raises"]["Student"] == "Carol Raises" and rows["zoe_copies_alice"]["Student"] == "copieszoe"


# ---- formgrader, as the README says to start it ------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("app", ["jupyter_server", "jupyterlab"])
def test_formgrader_starts_with_the_documented_command(run, app):
    port, token = _free_port(), "t0ken-for-the-test"
    # README: `cd <course> && .venv/bin/jupyter server --no-browser --ip 127.0.0.1` (or `jupyter lab`),
    # then /formgrader. `jupyter server` execs the jupyter-server script; run its module with this
    # interpreter, so a venv whose scripts point at another interpreter still tests this code.
    root_flag = ["--allow-root"] if os.geteuid() == 0 else []   # jupyter refuses root without it
    proc = subprocess.Popen([sys.executable, "-m", app, "--no-browser", "--ip", "127.0.0.1",
                             "--port", str(port), f"--IdentityProvider.token={token}", *root_flag],
                            cwd=run.root, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.addheaders = [("Authorization", f"token {token}")]
    try:
        deadline, page = time.time() + 90, None
        while time.time() < deadline and page is None:
            try:
                page = opener.open(f"http://127.0.0.1:{port}/formgrader", timeout=10).read().decode()
            except OSError:
                time.sleep(1)
        assert page and "manage assignments" in page.lower()
        api = opener.open(f"http://127.0.0.1:{port}/formgrader/api/assignments", timeout=30).read().decode()
        assignments = {a["name"]: a for a in json.loads(api)}
        assert assignments[A]["num_submissions"] == len(STUDENTS)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


# ---- layout in a real browser ------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAYOUT_JS = r"""() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) problems.push(`page overflows: ${root.scrollWidth} > ${root.clientWidth}`);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const re = /\S+/g; let m;
    while ((m = re.exec(node.textContent))) {
      const r = document.createRange(); r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
      const rects = Array.from(r.getClientRects()).filter(x => x.width > 0);
      if (new Set(rects.map(x => Math.round(x.top))).size > 1) problems.push(`word split over lines: ${m[0]}`);
      const cell = node.parentElement.closest('td,th');
      const width = r.getBoundingClientRect().width;
      if (cell && width > cell.clientWidth + 1) problems.push(`column narrower than its word ${m[0]}: ${cell.clientWidth} < ${width}`);
    }
  }
  for (const cell of document.querySelectorAll('td,th'))
    if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`cell content overflows: ${cell.textContent.slice(0, 40)}`);
  for (const badge of document.querySelectorAll('.status, .pts'))
    if (new Set(Array.from(badge.getClientRects()).map(x => Math.round(x.top))).size > 1) problems.push(`badge wraps: ${badge.textContent}`);
  return problems;
}"""


def test_feedback_and_class_report_layout_in_chromium(run):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (./run test installs it as root: apt-get install chromium)")
    pages = [run.root / "reports" / f"{A}.html"] + [run.course.feedback_dir / s / A / f"{A}.html"
                                                    for s in ("carol_raises", "alice_reference")]
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page()
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                for path in pages:
                    page.goto(path.as_uri())
                    if path.parent.name == "reports":   # the review list: one short line each, reasons folded
                        summaries = page.eval_on_selector_all("ul.reviewlist > li > details:not([open]) > summary",
                                                              "els => els.map(e => e.textContent)")
                        assert summaries and all(len(s) < 100 for s in summaries), summaries
                    else:                               # one plain sentence per part, the details folded
                        assert page.locator("section.part").count() == 4
                        assert page.locator("section.part > p:first-of-type").count() == 4
                        assert page.locator("section.part details[open]").count() == 0
                    assert page.evaluate(LAYOUT_JS) == [], (path, width)
        finally:
            browser.close()
