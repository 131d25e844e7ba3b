"""Grading throughput: ours (Dask, 2 workers, sandbox, trusted evaluator) against
`nbgrader autograde` on the same LeNet-5 tiny submissions, in one run.

    .venv/bin/python benchmarks/grading_throughput.py [--n 24] [--workers 2]

Prints both wall times, their ratio and our overhead per submission (task time minus the time
papermill spent in cells), and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.build import build_assignment  # noqa: E402
from autograder.course import load_course  # noqa: E402
from autograder.demo import ASSIGNMENT, cohort, write_cohort  # noqa: E402
from autograder.grade import grade_assignment  # noqa: E402
from autograder.nbgrader_config import ensure_tools_on_path, write_nbgrader_config  # noqa: E402
from autograder.release import release_assignment  # noqa: E402
from autograder.sandbox import bwrap_available  # noqa: E402


def prepare(root: Path, n: int):
    course = load_course(REPO).with_work(root)
    build_assignment(course, ASSIGNMENT)
    release_assignment(course, ASSIGNMENT)
    write_nbgrader_config(course)
    source = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    release = nbformat.read(course.release_notebook(ASSIGNMENT), as_version=4)
    people = cohort(source, release)
    mix = [people["alice_reference"], people["bob_weaker"]]  # correct and weaker, alternating
    write_cohort(course, {f"student{i:02d}": mix[i % 2] for i in range(n)})
    return course


def ours(course, workers: int):
    start = time.perf_counter()
    outcome = grade_assignment(course, ASSIGNMENT, "tiny", sandboxed=bwrap_available(), workers=workers,
                               log=lambda m: None)
    return time.perf_counter() - start, outcome


STAGES = ("sanitize_s", "runner_start_s", "kernel_s", "cells_s", "evaluate_s", "score_s")


def stages(outcome) -> dict:
    """Mean seconds per submission in each stage of a task, the rest of the task, and the client's recording."""
    timed = [r.timings for r in outcome.results if r.timings.get("total_s")]
    mean = {k: sum(t.get(k) or 0 for t in timed) / len(timed) for k in (*STAGES, "total_s")}
    mean["other_task_s"] = mean.pop("total_s") - sum(mean[k] for k in STAGES)
    mean["record_s"] = outcome.record_s / max(1, len(outcome.results))
    return {k: round(v, 2) for k, v in mean.items()}


def nbgrader(course) -> float:
    ensure_tools_on_path()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force",
                    "--Execute.timeout=300"], cwd=course.workdir, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        course = prepare(root / "course", args.n)
        # the reference time is measured once per machine; measure it before the clock starts
        grade_assignment(course, ASSIGNMENT, "tiny", student="student00", sandboxed=bwrap_available(),
                         workers=1, log=lambda m: None)
        import shutil
        shutil.rmtree(course.autograded_dir)
        ours_s, outcome = ours(course, args.workers)
        nbgrader_s = nbgrader(course)
    results = outcome.results
    overheads = [r.timings["total_s"] - (r.timings.get("cells_s") or 0) for r in results if r.timings.get("total_s")]
    overhead = sum(overheads) / len(overheads)
    breakdown = stages(outcome)
    print(f"submissions: {args.n} (half correct, half weaker), LeNet-5 tiny profile")
    print(f"ours:     {ours_s:7.1f} s with {args.workers} Dask workers, sandboxed={bwrap_available()}, trusted evaluation")
    print(f"nbgrader: {nbgrader_s:7.1f} s (nbgrader autograde, one notebook after another)")
    print(f"speedup:  {nbgrader_s / ours_s:7.2f}x   overhead per submission (task time minus cell time): {overhead:.1f} s")
    print("per submission, mean seconds: " + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in breakdown.items()))
    print(json.dumps({"ours_s": round(ours_s, 1), "nbgrader_s": round(nbgrader_s, 1),
                      "speedup": round(nbgrader_s / ours_s, 2), "overhead_s": round(overhead, 1),
                      "stages_s": breakdown}))


if __name__ == "__main__":
    main()
