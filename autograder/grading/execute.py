"""execute: run a sanitized notebook with papermill in a child process, sandboxed and limited.

Timing comes from here, never from the kernel: papermill records each cell's duration in the
executing process, outside the kernel, in `cell.metadata.papermill`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..sandbox import Limits, RunOutcome, SandboxSpec, run_limited, run_sandboxed
from .run_notebook import EXIT_DEAD_KERNEL, EXIT_OK, EXIT_TIMEOUT

PACKAGE_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ExecutionSettings:
    limits: Limits
    cell_timeout_s: float
    sandboxed: bool = True
    readonly: tuple[Path, ...] = ()     # e.g. the full profile's data root
    gpu: str | None = None
    threads: int | None = None          # torch/BLAS threads in the kernel (Dask workers set 1)


@dataclass
class Execution:
    status: str                       # "ok" | "timeout" | "crashed"
    executed: Path | None             # the executed notebook, possibly partial
    wall_s: float
    message: str = ""
    stderr_tail: str = ""
    peak_memory_bytes: int = 0
    flags: list[str] = field(default_factory=list)


def _child_env(settings: ExecutionSettings) -> dict[str, str]:
    env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/local/bin:/usr/bin:/bin"}
    if settings.threads:  # Dask workers export OMP_NUM_THREADS=1, which would make CPU torch crawl
        env.update(OMP_NUM_THREADS=str(settings.threads), MKL_NUM_THREADS=str(settings.threads))
    return env


def _classify(outcome: RunOutcome, executed: Path, settings: ExecutionSettings) -> tuple[str, str]:
    reason = outcome.killed_reason
    if reason == "timeout":
        return "timeout", f"stopped after {settings.limits.wall_seconds:.0f} s (the whole-notebook time limit)"
    if reason == "memory":
        return "crashed", f"stopped: used more than {settings.limits.memory_bytes / 2**30:.1f} GiB of memory"
    if reason == "processes":
        return "crashed", f"stopped: started more than {settings.limits.max_processes} processes"
    report = {}
    for line in reversed(outcome.stderr.strip().splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    code = outcome.returncode
    if code == EXIT_TIMEOUT:
        return "timeout", f"a cell ran longer than {settings.cell_timeout_s:.0f} s (the per-cell limit)"
    if code == EXIT_DEAD_KERNEL:
        return "crashed", "the kernel died while running the notebook (killed, out of memory or exited)"
    if code != EXIT_OK:
        detail = f"{report.get('error', 'error')}: {report.get('message', '')}".strip(": ")
        return "crashed", f"the notebook could not be run ({detail or f'exit code {code}'})"
    if not executed.is_file():
        return "crashed", "the executor finished without writing an executed notebook"
    return "ok", ""


def execute(notebook: nbformat.NotebookNode, workdir: Path, name: str, parameters: dict,
            settings: ExecutionSettings) -> Execution:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source, executed = workdir / f"{name}.input.ipynb", workdir / f"{name}.ipynb"
    nbformat.write(notebook, source)
    (workdir / "parameters.json").write_text(json.dumps(parameters))
    argv = [sys.executable, "-m", "autograder.grading.run_notebook",
            str(source), str(executed), str(workdir / "parameters.json"), str(settings.cell_timeout_s)]
    env = _child_env(settings)
    if settings.sandboxed:
        spec = SandboxSpec(workdir=workdir, readonly=(PACKAGE_DIR, *settings.readonly), gpu=settings.gpu, env=env)
        outcome = run_sandboxed(argv, spec, settings.limits)
    else:
        outcome = run_limited(argv, settings.limits, cwd=workdir, env={**os.environ, **env})
    status, message = _classify(outcome, executed, settings)
    flags = ["output_truncated"] if outcome.output_truncated else []
    return Execution(status, executed if executed.is_file() else None, outcome.wall_seconds, message,
                     outcome.stderr[-2000:], outcome.peak_memory_bytes, flags)


def cell_errors(nb: nbformat.NotebookNode) -> list[dict]:
    """Every cell that raised: its grade id (or index), the error name and message."""
    errors = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                errors.append({"cell": gid or f"cell {index}", "index": index,
                               "ename": out.get("ename", ""), "evalue": str(out.get("evalue", ""))[:300]})
    return errors


def cell_duration(nb: nbformat.NotebookNode, tag: str) -> float | None:
    """Duration of the cell carrying `tag` (or grade id), as papermill measured it."""
    for cell in nb.cells:
        if tag in cell.metadata.get("tags", []) or cell.metadata.get("nbgrader", {}).get("grade_id") == tag:
            pm = cell.metadata.get("papermill", {})
            raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            if pm.get("status") == "completed" and pm.get("duration") is not None and not raised:
                return float(pm["duration"])
            return None
    return None
