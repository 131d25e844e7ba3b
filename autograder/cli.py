"""The `autograder` command: build, release, verify, grade, check, collect, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

console = Console(highlight=False, width=max(Console().width, 130))


def _log(message: str) -> None:
    console.print(message, markup=False)


def _course(args):
    from .course import load_course

    course = load_course(Path(args.course) if args.course else None)
    if args.workdir:
        course = course.with_work(Path(args.workdir))
    if getattr(args, "db", None):
        course = course.with_work(course.workdir, gradebook_url=args.db)
    return course


def _names(course, names):
    return [course.check_assignment(n) for n in names] if names else list(course.assignments)


def cmd_build(args) -> int:
    from .build import build_assignment, stale_assignments

    course = _course(args)
    if args.check:
        stale = [n for n in stale_assignments(course) if n in _names(course, args.assignments)]
        for name in stale:
            _log(f"stale: {course.source_notebook(name)} differs from a fresh build; run `autograder build {name}`")
        if not stale:
            _log("all source notebooks are up to date")
        return 1 if stale else 0
    for name in _names(course, args.assignments):
        _log(f"built {build_assignment(course, name)}")
    return 0


def cmd_release(args) -> int:
    from .release import release_assignment

    course = _course(args)
    for name in _names(course, args.assignments):
        report = release_assignment(course, name)
        _log(f"released {report.notebook} (leak check: no solution, hidden test or reference answer)")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify_assignment

    course = _course(args)
    failed = 0
    for name in _names(course, args.assignments):
        check = verify_assignment(course, name, args.profile, sandboxed=not args.unsandboxed, log=_log)
        r = check.result
        review = [p.id for p in r.parts if p.needs_review]
        train = r.timings.get("train_s")
        _log(f"{name}: {r.status}, {r.score:g}/{r.max_score:g}"
             + (f" ({', '.join(review)} to be confirmed by an instructor)" if review else "")
             + (f", train {train:.1f} s" if train else ""))
        for problem in check.problems:
            _log(f"  problem: {problem}")
        failed += not check.ok
    return 1 if failed else 0


def summary_table(results) -> Table:
    """One row per submission, one column per rubric part ('?' = waits for manual grading)."""
    table = Table(title="Grades")
    parts = [(p.id, p.max_points) for p in results[0].parts] if results else []
    for col in ("student", "status", *[f"{pid}/{pts:g}" for pid, pts in parts], "total", "message"):
        table.add_column(col, overflow="fold", no_wrap=col not in ("message",))
    for r in sorted(results, key=lambda r: r.student):
        points = {p.id: p.points for p in r.parts}
        cells = ["?" if points.get(pid) is None else f"{points[pid]:g}" for pid, _ in parts]
        # Text(): student-derived strings are shown as they are, never read as rich markup
        table.add_row(Text(r.student), r.status, *cells, f"{r.score:g}/{r.max_score:g}", Text(r.message[:90]))
    return table


def cmd_grade(args) -> int:
    from .grade import grade_assignments

    course = _course(args)
    if args.unsandboxed:
        _log("WARNING: --unsandboxed: student notebooks run without isolation")
    outcome = grade_assignments(course, [args.assignment], args.profile, args.student,
                                sandboxed=not args.unsandboxed, workers=args.workers, scheduler=args.scheduler,
                                force=args.force, log=_log, console=console, per_gpu=args.per_gpu,
                                shared_folder=args.shared_folder or None)[args.assignment]
    console.print(summary_table(outcome.results))
    for failure in outcome.grader_failures:
        _log(f"GRADER ERROR {failure.student}: {failure.message}")
    if outcome.grader_failures:
        _log(f"{len(outcome.grader_failures)} submission(s) could not be graded because of the grader's side; "
             "no earlier grade was replaced. Fix the cause and run `grade` again: they are retried.")
    _log(f"grades CSV: {outcome.csv}\nclass report: {outcome.report}\n"
         f"feedback: {course.feedback_dir}/<student>/{args.assignment}/  ({outcome.wall_s:.0f} s)")
    return 3 if outcome.grader_failures else 0


def cmd_check(args) -> int:
    from .check import check_notebook

    report = check_notebook(Path(args.notebook))
    _log(f"{report.notebook}: {report.status} {report.message}")
    marks = {"ok": "[ok]     ", "missing": "[to do]  ", "info": "[info]   "}
    for kind, text in report.lines:
        _log(marks[kind] + text)
    return 0 if report.ok else 1


def cmd_collect(args) -> int:
    from .intake import collect
    from .intake.collect import course_notebook_ids

    course = _course(args)
    course.check_assignment(args.assignment)
    ids = course_notebook_ids(course)
    if args.assignment not in ids:
        _log(f"note: no released notebook of {args.assignment} here; notebooks are recognised by file name")
    report = collect(Path(args.source), args.assignment, course.workdir, kind=args.kind,
                     course_id=course.course_id, roster=Path(args.roster) if args.roster else None,
                     notebook_ids=ids if args.assignment in ids else None)
    for a in report.accepted:
        taken = a.source.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
        _log(f"accepted {a.student:<20} {a.submitted_at:%Y-%m-%d %H:%M} took {taken}"
             f"{' (replaced an earlier one)' if a.replaced_previous else ''}")
    for s in report.skipped:
        _log(f"skipped  {s.source}: {s.reason}")
    for r in report.rejected:
        _log(f"REJECTED {r.source}: {r.reason}")
    return 0


def cmd_export(args) -> int:
    from .grading.record import final_scores, latest_results, write_csv
    from .intake.roster import Roster
    from .reports.exports import canvas_csv, canvas_people
    from .reports.publish import submission_info
    from .rubric import load_rubric

    course = _course(args)
    name = course.check_assignment(args.assignment)
    rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
    results = latest_results(course, name)
    if not results:
        raise FileNotFoundError(f"no graded attempts of {name} under {course.autograded_dir}; run `autograder grade {name}`")
    if args.canvas:
        roster = Roster.load(Path(args.roster)) if args.roster else None
        # the gradebook's scores: what an instructor changed in formgrader is what the LMS gets
        final = final_scores(course, name)
        graded = {r.student: final.get(r.student, (r.score, r.needs_review)) for r in results}
        waiting = sorted(student for student, (_, review) in graded.items() if review)
        if waiting:
            _log(f"{len(waiting)} student(s) still have answers waiting for review in formgrader; their exported "
                 f"scores use the suggested points: {', '.join(waiting)}")
        recorded = {s: submission_info(course, s, name) for s in graded}
        people, unknown = canvas_people(graded, roster, recorded)
        if unknown:
            _log(f"error: Canvas could not match {len(unknown)} student(s), no Canvas user id is known for: "
                 f"{', '.join(unknown)}. Collect them from a Canvas zip (`autograder collect <zip> {name}`; "
                 "not under anonymous grading) or pass --roster with their lms_id. Nothing was written.")
            return 2
        path = canvas_csv(course.workdir / "grades" / f"{name}-canvas.csv", rubric,
                          {student: score for student, (score, _) in graded.items()}, people, args.canvas_id)
    else:
        path = write_csv(course.workdir / "grades" / f"{name}.csv", rubric, results)
    _log(f"wrote {path} ({len(results)} students)")
    return 0


def cmd_publish(args) -> int:
    from .reports.publish import publish
    from .rubric import load_rubric

    course = _course(args)
    name = course.check_assignment(args.assignment)
    done = publish(course, load_rubric(course.rubric_dir / f"{name}.yaml", name))
    _log(f"feedback: {course.feedback_dir}/<student>/{name}/{name}.html ({len(done.feedback)} students)\n"
         f"grades CSV: {done.csv}\nclass report: {done.report}")
    return 0


def cmd_status(args) -> int:
    from .reports.status import assignment_status

    course = _course(args)
    st = assignment_status(course, course.check_assignment(args.assignment))
    table = Table(title=f"{st.assignment}: status")
    for col in ("student", "collected", "graded", "score", "needs review", "grader error", "late"):
        # the late column keeps its sentence on one line ("submitted 33.0 hours after the due date")
        table.add_column(col, overflow="fold", min_width=40 if col == "late" else None)
    for r in st.students:
        score = "" if r.score is None else f"{r.score:g}/{r.max_score:g}"
        graded = (r.graded or "no") + (" (changed since)" if r.changed else "")
        table.add_row(r.student, r.collected or "no", graded, score, "yes" if r.needs_review else "",
                      "yes" if r.grader_error else "", r.late)
    console.print(table)
    for line in st.todo:
        _log(f"to do: {line}")
    return 0


def cmd_calibrate(args) -> int:
    from .grading.calibrate import MIN_GRADED, calibrate, calibration_path, read_calibrations
    from .rubric import load_rubric

    course = _course(args)
    name = course.check_assignment(args.assignment)
    rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
    from .reflection import CalibrationError
    from .reflection.calibration import PER_ITEM_MIN, READING_KEY
    from .reflection.scorer import REVIEW_BELOW

    try:
        counts = calibrate(course, rubric, learn_reading=not args.no_reading, log=_log)
    except CalibrationError as exc:
        _log(f"calibration not fitted: {exc}")
        return 1
    enough = sum(counts.values()) >= MIN_GRADED
    for part_id, n in counts.items():
        state = (("its own curve" if n >= PER_ITEM_MIN else "the assignment's pooled curve") if enough
                 else f"kept as it was (needs at least {MIN_GRADED} graded answers in the assignment)")
        _log(f"{part_id}: {n} hand-graded answer(s) in the gradebook; calibration: {state}")
    stored = read_calibrations(rubric)[0]
    reading = stored.get(READING_KEY)
    if enough and reading:
        _log(f"reading: learned from {reading['pairs']} pairs of texts from the graded answers; suggestions read "
             "answers with it")
    lines = {d.get("review_below") for d in stored.values() if d.get("checked")}
    if enough and lines and None not in lines:
        _log(f"review line: {lines.pop():.2f} for the items with hand-graded answers (the default is {REVIEW_BELOW}), "
             "set from those answers, each suggested without its own grade")
    elif enough:
        _log(f"review line: the default {REVIEW_BELOW} (about 60 hand-graded answers are needed to set one)")
    _log(f"calibrations: {calibration_path(rubric)}")
    return 0


def demo_table(name: str, results) -> Table:
    """One row per submission: status, total, and the automatically scored parts that lost points
    (every part is in the class report and the feedback)."""
    table = Table(title=f"{name}: grades")
    for col in ("student", "status", "total", "automatic parts below full points", "message"):
        table.add_column(col, overflow="fold", no_wrap=col in ("student", "status", "total"))
    for r in sorted(results, key=lambda r: r.student):
        lost = [f"{p.id} {p.points:g}/{p.max_points:g}" for p in r.parts
                if p.kind not in ("reflection", "inquiry") and p.points is not None and p.points < p.max_points]
        table.add_row(Text(r.student), r.status, f"{r.score:g}/{r.max_score:g}", ", ".join(lost) or "-",
                      Text(r.message[:60]))
    return table


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .sandbox import bwrap_available

    course = _course(args)
    sandboxed = bwrap_available() and not args.unsandboxed
    course, run = run_demo(course, Path(args.into), sandboxed, log=_log, assignments=args.assignments,
                           workers=args.workers)
    for name, outcome in run.outcomes.items():
        console.print(demo_table(name, outcome.results))
        _log(f"  class report: {outcome.report}\n  grades CSV:   {outcome.csv}\n"
             f"  feedback:     {course.feedback_dir}/<student>/{name}/{name}.html")
    if run.skipped:
        _log(f"skipped (no demo cohort): {', '.join(run.skipped)}")
    _log(f"gradebook:    {course.db_url} (try: cd {course.workdir} && nbgrader export)\n"
         f"demo finished in {run.wall_s:.0f} s ({sum(len(o.results) for o in run.outcomes.values())} submissions "
         f"of {len(run.outcomes)} assignments)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autograder", description=__doc__)
    p.add_argument("--course", help="course root (default: the folder holding course_config.py)")
    p.add_argument("--workdir", help="runtime root for assignments/, release/, submitted/, gradebook ... "
                                     "(default: the course root)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="reference/<a>.py + rubric -> assignments/<a>/<a>.ipynb")
    b.add_argument("assignments", nargs="*")
    b.add_argument("--check", action="store_true", help="exit 1 when a committed notebook is stale")
    b.set_defaults(func=cmd_build)

    r = sub.add_parser("release", help="nbgrader generate_assignment into release/, then a leak check")
    r.add_argument("assignments", nargs="*")
    r.set_defaults(func=cmd_release)

    v = sub.add_parser("verify", help="the reference earns full marks under its own rubric")
    v.add_argument("assignments", nargs="*")
    v.add_argument("--profile")
    v.add_argument("--unsandboxed", action="store_true")
    v.set_defaults(func=cmd_verify)

    g = sub.add_parser("grade", help="grade every submission under submitted/<student>/<assignment>/")
    g.add_argument("assignment")
    g.add_argument("--profile")
    g.add_argument("--student")
    g.add_argument("--workers", type=int, help="local workers (default: one per core, or one per GPU)")
    g.add_argument("--scheduler", help="address of a Dask scheduler whose workers grade (tcp://host:8786)")
    g.add_argument("--shared-folder", action="store_true",
                   help="with --scheduler: the runners see this course folder at the same path (default: "
                        "each task carries what its runner needs and brings back what is recorded)")
    g.add_argument("--per-gpu", type=int, default=1, metavar="K",
                   help="embedded cluster: K notebooks share each GPU, each with 1/K of its memory (small work)")
    g.add_argument("--force", action="store_true", help="regrade everything (a new attempt each)")
    g.add_argument("--db", help="gradebook SQLAlchemy URL (default: sqlite gradebook.db in the course)")
    g.add_argument("--unsandboxed", action="store_true", help="run student code without bubblewrap (unsafe)")
    g.set_defaults(func=cmd_grade)

    c = sub.add_parser("check", help="students: self-check a notebook with the public tests (tiny profile)")
    c.add_argument("notebook")
    c.set_defaults(func=cmd_check)

    co = sub.add_parser("collect", help="take submissions from an exchange, a folder or an LMS zip")
    co.add_argument("source")
    co.add_argument("assignment")
    co.add_argument("--kind", default="auto", choices=["auto", "exchange", "folder", "zip"])
    co.add_argument("--roster")
    co.set_defaults(func=cmd_collect)

    e = sub.add_parser("export", help="grades of the newest attempts as CSV (per part, or for Canvas)")
    e.add_argument("assignment")
    e.add_argument("--canvas", action="store_true", help="Canvas gradebook import format")
    e.add_argument("--canvas-id", help="the Canvas assignment id, for the column name")
    e.add_argument("--roster", help="CSV with student_id, lms_id, name (Canvas user ids and names)")
    e.set_defaults(func=cmd_export)

    pb = sub.add_parser("publish", help="feedback, grades CSV and class report again from the gradebook "
                                         "(after manual grading in formgrader: its scores and comments win)")
    pb.add_argument("assignment")
    pb.set_defaults(func=cmd_publish)

    st = sub.add_parser("status", help="per student: collected, graded, needs review, grader error, late; "
                                       "and what is left to do")
    st.add_argument("assignment")
    st.set_defaults(func=cmd_status)

    cal = sub.add_parser("calibrate", help="fit the written-answer scorer from scores given in formgrader")
    cal.add_argument("assignment")
    cal.add_argument("--no-reading", action="store_true",
                     help="read answers with the embedding model as shipped: do not learn the course's reading "
                          "from the graded answers (faster; suggestions agree less with your grades)")
    cal.set_defaults(func=cmd_calibrate)

    d = sub.add_parser("demo", help="everything above on the tiny profile in a fresh work folder, "
                                    "a simulated cohort per assignment")
    d.add_argument("assignments", nargs="*", help="only these (default: every assignment with a demo cohort)")
    d.add_argument("--into", default="demo-work", help="the demo's fresh work folder (default: demo-work)")
    d.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    d.add_argument("--unsandboxed", action="store_true")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .course import CourseError
    from .rubric import RubricError
    from .build import BuildError
    from .release import ReleaseError
    from .sandbox import SandboxUnavailable
    from .grading.preflight import PreflightError
    from .grading.record import RecordError
    from .grading.dispatch import SchedulerLost

    try:
        return args.func(args)
    except (CourseError, RubricError, BuildError, ReleaseError, SandboxUnavailable, PreflightError, RecordError,
            SchedulerLost, FileNotFoundError, KeyError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        return 2
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
