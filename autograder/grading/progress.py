"""A live progress display for a grading batch: done / running / failed, per runner, time left."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .results import GradeResult


class BatchProgress:
    def __init__(self, total: int, console: Console | None = None):
        self.total, self.done = total, 0
        self.failed: Counter = Counter()
        self.runners: Counter = Counter()
        self.progress = Progress(
            TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=console or Console(), transient=False)
        self.task = self.progress.add_task("grading", total=total, state=self._state())

    def _state(self) -> str:
        running = self.total - self.done
        problems = ", ".join(f"{n} {s}" for s, n in sorted(self.failed.items())) or "0 failed"
        runners = " ".join(f"{r.split('/')[-1]}:{n}" for r, n in sorted(self.runners.items()))
        return f"running/queued {running} | {problems} | {runners}"

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, result: GradeResult) -> None:
        self.done += 1
        if result.status != "graded":
            self.failed[result.status] += 1
        self.runners[result.runner or "?"] += 1
        self.progress.update(self.task, advance=1, state=self._state())
        self.progress.console.print(
            f"  {result.student:<22} {result.status:<8} {result.score:5.1f}/{result.max_score:g}  {result.message[:70]}",
            markup=False, highlight=False)
