"""Grade assignments: discover submissions, decide what to run, dispatch one task each through
Dask, record once. Publishing what was recorded (feedback, CSV, class report) is the caller's:
`autograder/grade.py` puts the two together, so grading never imports reports.

The client (this process) alone writes the gradebook; tasks return plain GradeResults.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed as futures_completed
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..course import Course
from ..secret import course_secret
from ..intake.roster import valid_student_id
from ..intake.timestamps import submitted_at
from ..rubric import Rubric, load_rubric
from ..sandbox import Limits, bwrap_available, SandboxUnavailable
from . import record
from .calibrate import read_calibrations
from .carried import carry
from .execute import ExecutionSettings
from .inputs import changed, grading_inputs, notebook_digest, reuse
from .pipeline import GradingTask, grade_one
from .preflight import preflight, reference_failed, reference_service_failed
from .reference_cells import reference_cells, store_reference_cells
from .progress import BatchProgress
from .results import GradeResult, Submission, file_sha256
from .timing import (cached_reference_seconds, cached_reference_service, cluster_key, machine_key, service_latency,
                     store_reference_seconds)


@dataclass
class BatchOutcome:
    results: list[GradeResult]
    wall_s: float
    grader_failures: list[GradeResult] = field(default_factory=list)   # newest attempts the grader failed
    record_s: float = 0.0      # the client's recording: gradebook, then feedback, CSV, class report
    rubric: Rubric | None = None
    to_publish: list[GradeResult] = field(default_factory=list)   # what replaces the attempts on disk
    recorded: tuple | None = None     # record.recorded(), read once after recording
    csv: Path | None = None           # set by publishing (autograder/grade.py)
    report: Path | None = None


def execution_settings(course: Course, rubric: Rubric, profile: str, sandboxed: bool,
                       threads: int | None = None) -> ExecutionSettings:
    """Limits from the course profile, overridden per assignment by the rubric's `limits`."""
    values = {**vars(course.profile(profile)), **rubric.limits.get(profile, {})}
    if sandboxed and not bwrap_available():
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. Install it "
            "(apt-get install bubblewrap; the set-up script does this as root) or pass --unsandboxed "
            "to run untrusted notebooks without isolation, knowingly.")
    limits = Limits(wall_seconds=values["notebook_timeout_s"], memory_bytes=int(values["memory_gb"] * 2**30))
    readonly = (course.data_root,) if profile != "tiny" and course.data_root.exists() else ()
    return ExecutionSettings(limits=limits, cell_timeout_s=values["cell_timeout_s"], sandboxed=sandboxed,
                             readonly=readonly, threads=threads)


def held_student_folders(course: Course, assignment: str) -> list[str]:
    """Folders under submitted/ whose name is not a usable student id (non-ASCII look-alikes
    such as a Cyrillic copy of a real id, spaces, ...): never graded, shown for a human."""
    return sorted(f.parent.name for f in course.submitted_dir.glob(f"*/{assignment}")
                  if not valid_student_id(f.parent.name))


def discover(course: Course, assignment: str, student: str | None = None) -> list[Submission]:
    """Every submission folder; one that holds no single notebook to grade yields a Submission
    with a `problem` (graded `invalid`, naming what was found), never an exception."""
    subs = []
    for folder in sorted(course.submitted_dir.glob(f"*/{assignment}")):
        if student and folder.parent.name != student:
            continue
        if not valid_student_id(folder.parent.name):   # see held_student_folders
            continue
        subs.append(_submission(folder, folder.parent.name, assignment))
    return subs


def _submission(folder: Path, student: str, assignment: str) -> Submission:
    expected = folder / f"{assignment}.ipynb"
    if expected.is_file():
        return Submission(student, assignment, expected)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if len(notebooks) == 1:
        return Submission(student, assignment, notebooks[0])
    names = sorted(p.name for p in folder.iterdir())[:10]
    found = (f"{len(notebooks)} notebooks, none named {expected.name}" if notebooks else "no notebook") + \
        (f" (files: {', '.join(names)})" if names else " (the folder is empty)")
    return Submission(student, assignment, expected,
                      problem=f"expected one notebook named {expected.name}; found {found}. "
                              f"Submit exactly one notebook, named {expected.name}")


def _next_attempt(course: Course, sub: Submission) -> tuple[int, Path]:
    root = course.autograded_dir / sub.student / sub.assignment / "attempts"
    done = [int(p.name) for p in root.glob("[0-9]*") if p.name.isdigit()]
    n = max(done, default=0) + 1
    return n, root / f"{n:03d}"


def task_inputs(course: Course, rubric: Rubric, sub: Submission, profile: str, settings: ExecutionSettings,
                reference_s: float | None, reference_service: dict | None, calibration_digest: str) -> dict:
    limits = {**vars(settings.limits), "cell_timeout_s": settings.cell_timeout_s, "sandboxed": settings.sandboxed}
    return grading_inputs(file_sha256(sub.path), notebook_digest(course.source_notebook(sub.assignment)), profile, limits,
                          rubric, reference_s, calibration_digest, reference_service)


def make_task(course: Course, rubric: Rubric, sub: Submission, profile: str, settings: ExecutionSettings,
              reference_s: float | None, attempt_dir: Path | None = None, attempt: int = 0,
              previous: "Decision | None" = None, cells: dict | None = None,
              reference_service: dict | None = None, reference_run: bool = False,
              calibrations: tuple[dict, str] | None = None) -> GradingTask:
    """A grading task; with `previous` (a re-score decision), one that scores that attempt's run
    again. `cells`: the reference's instructor-cell durations (default: this machine's cache);
    `reference_service`: the reference service's latency on this runner (rubric.latency_part);
    `calibrations`: the written-answer calibrations and their digest (default: read now), which
    a batch reads once per assignment."""
    stored, digest = calibrations if calibrations is not None else read_calibrations(rubric)
    if attempt_dir is None:
        attempt, attempt_dir = _next_attempt(course, sub)
    rescore = previous is not None and previous.action in ("rescore", "reevaluate")
    return GradingTask(submission=sub, rubric=rubric, profile=profile,
                       source_notebook=course.source_notebook(sub.assignment), attempt_dir=attempt_dir,
                       attempt=attempt, settings=settings, cache_dir=course.cache_dir,
                       data_root=course.data_root, hidden_root=course.hidden_data_root,
                       reference_train_s=reference_s, device=course.profile(profile).device,
                       reference_cells=(cells or reference_cells(course.cache_dir, sub.assignment, profile))
                       if reference_s else None, reference_service=reference_service,
                       inputs=task_inputs(course, rubric, sub, profile, settings, reference_s, reference_service, digest),
                       calibrations=stored,
                       rescore_from=Path(previous.result.output_dir) if rescore else None,
                       reevaluate=rescore and previous.action == "reevaluate", reference_run=reference_run)


def reference_seconds(course: Course, rubric: Rubric, profile: str, settings: ExecutionSettings,
                      remeasure: bool = False, log: Callable[[str], None] = print) -> float | None:
    """The reference solution's training time on this machine, measured once and cached."""
    name = rubric.assignment
    if not rubric.needs_reference_run:
        return None     # nothing is scored against the reference: no reference run needed
    machine = machine_key()
    if not remeasure and (cached := cached_reference_seconds(course.cache_dir, name, profile, machine)) \
            and reference_cells(course.cache_dir, name, profile, machine) is not None \
            and (rubric.latency_part is None or cached_reference_service(course.cache_dir, name, profile, machine)):
        return cached
    log(f"measuring the reference training time of {name} ({profile}) on this machine, once")
    sub = Submission("_reference", name, course.source_notebook(name))
    scratch = course.cache_dir / "reference-runs" / f"{name}-{profile}-{int(time.time())}"
    result = grade_one(make_task(course, rubric, sub, profile, settings, None, scratch, 0, reference_run=True))
    seconds, service = reference_measures(rubric, result, profile, scratch)
    store_reference_seconds(course.cache_dir, name, profile, machine, seconds, service)
    store_reference_cells(course.cache_dir, name, profile, scratch / "work" / f"{name}.ipynb", machine)
    return seconds


def reference_measures(rubric: Rubric, result: GradeResult, profile: str, scratch: Path,
                       runner: str = "") -> tuple[float, dict | None]:
    """What a reference run measured: its training time and, when a part scores latency against
    it, its service's p50/p95. Missing either refuses the session before any student runs, since
    every student would be scored against nothing."""
    name, seconds = rubric.assignment, result.timings.get("train_s")
    if not seconds:
        raise reference_failed(name, profile, result.status, result.message + runner, scratch)
    part = rubric.latency_part
    service = service_latency(result.evaluation, part.id) if part else None
    if part and service is None:
        check = (result.evaluation or {}).get("checks", {}).get(part.id) or {}
        why = check.get("explanation") or result.evaluation.get("grader_error") or result.message
        raise reference_service_failed(name, profile, why + runner, scratch)
    return seconds, service


@dataclass
class Decision:
    """What to do with one submission: "keep" its standing grade, "rescore"/"reevaluate" the
    standing attempt's run (only scoring or evaluation inputs changed), or "run" it."""
    submission: Submission
    action: str
    result: GradeResult | None = None     # the standing attempt, when there is one
    changed: list[str] = field(default_factory=list)


def decide(course: Course, sub: Submission, inputs: dict, force: bool) -> Decision:
    found = record.attempts(course, sub.student, sub.assignment)
    standing = record.standing(found)
    # the newest attempt failed on the grader's side: retried (its grade, if any, stands meanwhile)
    if force or not found or found[-1].grader_side or not standing.inputs:
        return Decision(sub, "run", standing)
    action = reuse(standing.inputs, inputs)
    if action == "reevaluate" and not (Path(standing.output_dir) / "work" / "artifacts").is_dir():
        action = "run"
    return Decision(sub, action, standing, changed(standing.inputs, inputs))


def plan(course: Course, rubric: Rubric, subs: list[Submission], profile: str, force: bool,
         settings: ExecutionSettings, reference_s: float | None, reference_service: dict | None,
         calibration_digest: str) -> list[Decision]:
    """Decide per submission from the fingerprints of what its grade depends on (grading/inputs.py)."""
    return [decide(course, s, task_inputs(course, rubric, s, profile, settings, reference_s, reference_service,
                                          calibration_digest), force)
            for s in subs]


def _describe_plan(decisions: list[Decision], log: Callable[[str], None]) -> None:
    kept = [d for d in decisions if d.action == "keep"]
    again = [d for d in decisions if d.action in ("rescore", "reevaluate")]
    if kept:
        log(f"{len(kept)} grade(s) kept: nothing they depend on changed (use --force to regrade)")
    if again:
        why = sorted({k for d in again for k in d.changed})
        log(f"{len(again)} grade(s) to score again from their stored runs, without running the notebooks "
            f"(changed: {', '.join(why)})")


def _changed_grades(decisions: list[Decision], results: list[GradeResult]) -> list[str]:
    before = {d.submission.student: d.result for d in decisions if d.action in ("rescore", "reevaluate")}
    return [f"{r.student} {before[r.student].score:g} -> {r.score:g}" for r in results
            if r.student in before and not r.grader_side and abs(r.score - before[r.student].score) > 1e-9]


@dataclass
class _Assignment:
    """One assignment's share of a grading session: its rubric, settings and submissions."""
    rubric: Rubric
    settings: ExecutionSettings
    subs: list[Submission]
    reference_s: float | None = None
    reference_cells: dict | None = None
    reference_service: dict | None = None    # the reference service's latency (rubric.latency_part)
    calibrations: tuple[dict, str] = field(default_factory=lambda: ({}, ""))   # written-answer calibrations, digest


def grade_assignments(course: Course, assignments: list[str], profile: str | None = None,
                      student: str | None = None, sandboxed: bool = True, workers: int | None = None,
                      scheduler: str | None = None, force: bool = False, log: Callable[[str], None] = print,
                      console=None, limits: dict[str, dict] | None = None,
                      per_gpu: int = 1, shared_folder: bool | None = None, client=None) -> dict[str, BatchOutcome]:
    """Preflight every assignment, measure missing reference times on the cluster in parallel,
    grade what is not graded yet (everything with `force`) in one dispatch, record per assignment
    (the one grading path; `autograder.grade` adds publishing, and everyone calls that).

    `console`: a rich Console for the live progress display (the CLI); None logs a line per result.
    `limits`: per assignment, overrides of the profile's `notebook_timeout_s` / `cell_timeout_s`.
    `per_gpu`: K notebooks per GPU on the embedded cluster, each kept to 1/K of its memory.
    `shared_folder`: whether the runners see the course folder at the same path (default: yes
    for the embedded cluster, no for a scheduler: tasks then carry what they need, carried.py).
    `client`: a Dask client to grade on instead of a cluster of this session's own (one cluster
    for several sessions at once: their tasks fill each other's idle cores)."""
    from .dispatch import InterruptedBatch, default_workers, dispatch, grading_client, memory_fraction

    start = time.perf_counter()
    profile = profile or course.default_profile
    course.profile(profile)
    jobs = {name: _prepare(course, course.check_assignment(name), profile, student, log) for name in assignments}
    scheduler = scheduler or course.scheduler_address
    workers = workers or default_workers(sum(len(j.subs) for j in jobs.values()), per_gpu)
    threads = max(1, (os.cpu_count() or 1) // workers) if not scheduler else None
    share = {} if scheduler else {"per_gpu": per_gpu, "gpu_memory_fraction": memory_fraction(per_gpu)}
    for name, job in jobs.items():   # everything that can be checked, before any student code runs
        job.settings = replace(_with_limits(execution_settings(course, job.rubric, profile, sandboxed, threads),
                                            (limits or {}).get(name, {})), **share)
        preflight(course, job.rubric, profile, scheduler)
        record.ensure_assignment_in_gradebook(course, name)
    course_secret(course.cache_dir)  # created by the client, before workers race for it
    carried = not (shared_folder if shared_folder is not None else not scheduler)
    if scheduler:
        log("runners " + ("read and write the course folder (shared folder)" if not carried else
                          "get what they need with each task and return what is recorded (no shared folder)"))
    elapsed = lambda: f"{time.perf_counter() - start:4.0f} s"  # noqa: E731
    results: list[GradeResult] = []
    decisions: list[Decision] = []
    with (nullcontext(client) if client is not None else grading_client(workers, scheduler)) as client:
        _reference_times(client, course, jobs, profile, log, elapsed, cluster_key(scheduler) if carried else None)
        for job in jobs.values():
            decisions += plan(course, job.rubric, job.subs, profile, force, job.settings, job.reference_s,
                              job.reference_service, job.calibrations[1])
        _describe_plan(decisions, log)
        todo = [d for d in decisions if d.action != "keep"]
        tasks = [make_task(course, jobs[d.submission.assignment].rubric, d.submission, profile,
                           jobs[d.submission.assignment].settings, jobs[d.submission.assignment].reference_s,
                           previous=d, cells=jobs[d.submission.assignment].reference_cells,
                           reference_service=jobs[d.submission.assignment].reference_service,
                           calibrations=jobs[d.submission.assignment].calibrations) for d in todo]
        if carried:
            tasks = [carry(t) for t in tasks]
        if tasks:
            where = f"the cluster at {scheduler}" if scheduler else f"{workers} local worker(s), {threads} thread(s) each"
            log(f"grading {len(tasks)} submission(s) of {', '.join(jobs)} on {where}, "
                f"{'sandboxed' if sandboxed else 'UNSANDBOXED'}")
            display = BatchProgress(len(tasks), console) if console is not None else None

            def done(result: GradeResult) -> None:
                record.write_attempt(result)  # at once: a killed run keeps every finished grade
                results.append(result)
                if display:
                    display.update(result)
                else:
                    log(f"  [{len(results)}/{len(tasks)}] {result.assignment:<18} {result.student:<24} "
                        f"{result.status:<8} {result.score:5.1f}/{result.max_score:<3g} {result.message[:44]}  ({elapsed()})")

            try:
                with display or nullcontext():
                    dispatch(client, tasks, done)
            except InterruptedBatch as stop:
                log(f"interrupted: {len(stop.finished)} finished result(s) are kept; run again to grade the rest")
    changes = _changed_grades(decisions, results)
    if any(d.action in ("rescore", "reevaluate") for d in decisions):
        log(f"scored again: {len(changes)} grade(s) changed" + (f": {', '.join(changes)}" if changes else ""))
    kept = [d.result for d in decisions if d.action == "keep"]
    return {name: finish(course, job.rubric, [r for r in results + kept if r.assignment == name], start)
            for name, job in jobs.items()}


def _prepare(course: Course, name: str, profile: str, student: str | None,
             log: Callable[[str], None]) -> _Assignment:
    rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
    subs = discover(course, name, student)
    for held in held_student_folders(course, name):
        log(f"not graded: submitted/{held!r} is not a valid student id (ASCII letters, digits, _.@+-); "
            "it may imitate another student's id: check it, then rename or remove the folder")
    if not subs:
        who = f"student {student!r}" if student else "any student"
        raise FileNotFoundError(f"no submission of {name} by {who} under {course.submitted_dir}/<student>/{name}/")
    return _Assignment(rubric, None, subs, calibrations=read_calibrations(rubric))


def _with_limits(settings: ExecutionSettings, overrides: dict) -> ExecutionSettings:
    if not overrides:
        return settings
    return replace(settings, cell_timeout_s=overrides.get("cell_timeout_s", settings.cell_timeout_s),
                   limits=replace(settings.limits,
                                  wall_seconds=overrides.get("notebook_timeout_s", settings.limits.wall_seconds)))


def _reference_times(client, course: Course, jobs: dict[str, _Assignment], profile: str,
                     log: Callable[[str], None], elapsed: Callable[[], str], cluster: str | None = None) -> None:
    """Cached reference times, and the missing ones measured on the cluster, in parallel. A
    reference that does not train stops the session (PreflightError) before any submission runs.
    `cluster`: the timing key of runners without the course folder (their reference is measured
    by a carried task and cached here, on the client); None: this machine's, cached by the worker."""
    from dask.distributed import as_completed

    from .dispatch import task_key

    key = cluster or machine_key()
    missing = []
    for name, job in jobs.items():
        if job.rubric.needs_reference_run:
            job.reference_s = cached_reference_seconds(course.cache_dir, name, profile, key)
            job.reference_cells = reference_cells(course.cache_dir, name, profile, key)
            job.reference_service = cached_reference_service(course.cache_dir, name, profile, key)
            if job.reference_s is None or job.reference_cells is None or \
                    (job.rubric.latency_part is not None and job.reference_service is None):
                missing.append(name)   # the training time, each instructor cell's, the service's latency
    if not missing:
        return
    log(f"measuring the reference training time of {', '.join(missing)} ({profile}) on the cluster, once")
    if cluster:
        with ThreadPoolExecutor(len(missing)) as pool:
            futures = {pool.submit(_carried_reference, client, course, jobs[n], profile, key): n for n in missing}
            for i, future in enumerate(futures_completed(futures), 1):
                name = futures[future]
                jobs[name].reference_s, jobs[name].reference_cells, jobs[name].reference_service = future.result()
                log(f"  [{i}/{len(missing)}] reference {name:<18} trains in {jobs[name].reference_s:.1f} s  ({elapsed()})")
        return
    futures = {client.submit(reference_seconds, course, jobs[n].rubric, profile, jobs[n].settings, log=_quiet,
                             pure=False, key=task_key("reference", n, profile)): n for n in missing}
    for i, future in enumerate(as_completed(futures), 1):
        name = futures[future]
        jobs[name].reference_s = future.result()
        jobs[name].reference_cells = reference_cells(course.cache_dir, name, profile)
        jobs[name].reference_service = cached_reference_service(course.cache_dir, name, profile, key)
        log(f"  [{i}/{len(missing)}] reference {name:<18} trains in {jobs[name].reference_s:.1f} s  ({elapsed()})")


def _carried_reference(client, course: Course, job: _Assignment, profile: str, key: str):
    """The reference run by a carried task on some runner; its time and cell durations cached
    on the client under the cluster's key."""
    from .dispatch import run_reference

    name = job.rubric.assignment
    scratch = course.cache_dir / "reference-runs" / f"{name}-{profile}-{int(time.time())}"
    sub = Submission("_reference", name, course.source_notebook(name))
    result = run_reference(client, carry(make_task(course, job.rubric, sub, profile, job.settings, None, scratch, 0,
                                                   reference_run=True)))
    seconds, service = reference_measures(job.rubric, result, profile, scratch, f" (on {result.runner})")
    store_reference_seconds(course.cache_dir, name, profile, key, seconds, service)
    store_reference_cells(course.cache_dir, name, profile, scratch / "work" / f"{name}.ipynb", key)
    return seconds, reference_cells(course.cache_dir, name, profile, key), service


def _quiet(message: str) -> None:
    pass


def flag_copied_answers(rubric: Rubric, results: list[GradeResult]) -> set[str]:
    """Near-duplicate written answers between students go to a human, as pairs. Returns the
    students whose results gained a flag (a flag already there is not added twice)."""
    from ..reflection import near_duplicates

    changed = set()
    by = {r.student: r for r in results}
    for part in rubric.answer_parts:
        answers = {r.student: p.details["answer"] for r in results for p in r.parts
                   if p.id == part.id and p.details.get("answer")}
        for a, b, similarity in near_duplicates(answers):
            for me, other in ((a, b), (b, a)):
                # the student's own flag never names the other student; the pair is kept in the
                # part's details, which only the instructor's class report shows
                flag = f"{part.id}: near-duplicate of another student's answer"
                if flag not in by[me].flags:
                    by[me].flags.append(flag)
                    changed.add(me)
                for p in by[me].parts:
                    if p.id == part.id:
                        p.needs_review = True
                        pairs = p.details.setdefault("near_duplicates", {})
                        if pairs.get(other) != round(similarity, 4):
                            pairs[other] = round(similarity, 4)
                            changed.add(me)
    return changed


def finish(course: Course, rubric: Rubric, results: list[GradeResult], start: float) -> BatchOutcome:
    """Record a batch in the gradebook. A grader-side failure is listed for the instructor and
    never replaces a grade; it is published only where no grade stands."""
    began = time.perf_counter()
    completed = [r for r in results if not r.grader_side]
    copied = flag_copied_answers(rubric, completed)
    for result in completed:   # the attempt on disk keeps the flag too: exports and later reports read it
        if result.student in copied:
            record.write_attempt(result)
    record.record_gradebook(course, rubric, completed)
    on_disk = record.recorded(course, rubric.assignment)   # every attempt read once for the batch
    standing = {r.student: r for r in on_disk[0]}
    standing.update({r.student: r for r in completed})
    # a failure gets a feedback page only where no grade stands (it says so, and nothing internal)
    ungraded = [r for r in results if r.grader_side and standing.get(r.student, r).grader_side]
    record.record_submission_times(course, rubric.assignment,
                                   {s: submitted_at(course, s, rubric.assignment) for s in standing},
                                   course.due_date(rubric.assignment), course.late_penalty)
    for result in completed:
        record.publish_notebook(course, result)
    return BatchOutcome(results, time.perf_counter() - start, on_disk[1], time.perf_counter() - began,
                        rubric, completed + ungraded, on_disk)
