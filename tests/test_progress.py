"""The live progress display of a grading batch (rich), recorded on a real console."""

import io

from rich.console import Console

from autograder.grading.progress import BatchProgress
from autograder.grading.results import GradeResult, PartResult


def result(student: str, status: str, runner: str, points: float) -> GradeResult:
    return GradeResult(student, "lenet5_mnist", status, f"{status} message", "tiny", runner=runner,
                       parts=[PartResult("accuracy", "metric", "Accuracy", points, 10, "")])


def test_progress_counts_done_failures_and_runners():
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    with BatchProgress(3, console) as progress:
        progress.update(result("alice", "graded", "tcp://10.0.0.5:3456/worker-a", 9.5))
        progress.update(result("bob", "timeout", "tcp://10.0.0.6:3456/worker-b", 0))
        assert progress._state() == "running/queued 1 | 1 timeout | worker-a:1 worker-b:1"
        progress.update(result("carol", "crashed", "tcp://10.0.0.5:3456/worker-a", 0))
    assert progress.done == 3 and progress._state() == "running/queued 0 | 1 crashed, 1 timeout | worker-a:2 worker-b:1"
    text = out.getvalue()
    for line in ("alice                  graded     9.5/10  graded message",
                 "bob                    timeout    0.0/10  timeout message"):
        assert line in text
    assert "3/3" in text   # the bar's final count, left on screen (not transient)
