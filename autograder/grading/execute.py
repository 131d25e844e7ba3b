"""execute: run a sanitized notebook with papermill in a child process, sandboxed and limited.

Timing comes from here, never from the kernel: papermill records each cell's duration in the
executing process, outside the kernel, in `cell.metadata.papermill`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..sandbox import Limits, RunOutcome, SandboxSpec, run_limited, run_sandboxed
from .cpu_env import GPU_SHARE_ENV, TORCH_CPU_ENV
from .run_notebook import EXIT_DEAD_KERNEL, EXIT_OK, EXIT_TIMEOUT, SANDBOX_ENV

PACKAGE_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ExecutionSettings:
    limits: Limits
    cell_timeout_s: float
    sandboxed: bool = True
    readonly: tuple[Path, ...] = ()     # e.g. the full profile's data root
    gpu: str | None = None
    threads: int | None = None          # torch/BLAS threads in the kernel (Dask workers set 1)
    per_gpu: int = 1                    # notebooks sharing one GPU (embedded cluster: K workers per GPU)
    gpu_memory_fraction: float | None = None   # each one's share of the GPU's memory (student.select_device)


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
    env.update(TORCH_CPU_ENV)
    if settings.threads:  # Dask workers export OMP_NUM_THREADS=1, which would make CPU torch crawl
        env.update(OMP_NUM_THREADS=str(settings.threads), MKL_NUM_THREADS=str(settings.threads))
    if settings.gpu_memory_fraction:
        env[GPU_SHARE_ENV] = str(settings.gpu_memory_fraction)
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
    # -P: the working folder, where the notebook can write modules, is not on the executor's import path
    argv = [sys.executable, "-P", "-m", "autograder.grading.run_notebook",
            str(source), str(executed), str(workdir / "parameters.json"), str(settings.cell_timeout_s)]
    env = _child_env(settings)
    if settings.sandboxed:
        spec = SandboxSpec(workdir=workdir, readonly=(PACKAGE_DIR, *settings.readonly), gpu=settings.gpu,
                           env={**env, SANDBOX_ENV: "1"})
        outcome = run_sandboxed(argv, spec, settings.limits)
    else:
        outcome = run_limited(argv, settings.limits, cwd=workdir, env={**os.environ, **env})
    removed = seal(workdir)   # before anything reads what the notebook left
    status, message = _classify(outcome, executed, settings)
    flags = ["output_truncated"] if outcome.output_truncated else []
    if removed:
        shown = ", ".join(removed[:5]) + (", ..." if len(removed) > 5 else "")
        flags.append(f"the notebook left {len(removed)} link(s) or special file(s) in its folder, removed "
                     f"before grading: {shown}")
    flags += _recorded_flags(executed)
    return Execution(status, executed if executed.is_file() else None, outcome.wall_seconds, message,
                     outcome.stderr[-2000:], outcome.peak_memory_bytes, flags)


def seal(workdir: Path) -> list[str]:
    """After the run, when nothing the notebook started is alive: delete every link, FIFO,
    socket or device it left in its folder (a reader outside the sandbox would follow or block
    on them) and make the rest readable. Returns the paths removed, relative to the folder."""
    removed = []
    os.chmod(workdir, 0o755)
    for dirpath, dirnames, filenames in os.walk(workdir):   # never follows links
        for name in list(dirnames) + filenames:
            path = os.path.join(dirpath, name)
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(path, stat.S_IMODE(mode) | 0o700)
                elif stat.S_ISREG(mode):
                    os.chmod(path, stat.S_IMODE(mode) | 0o600)
                else:
                    os.unlink(path)
                    removed.append(os.path.relpath(path, workdir))
                    if name in dirnames:
                        dirnames.remove(name)
            except FileNotFoundError:
                pass
    return sorted(removed)


def _recorded_flags(executed: Path) -> list[str]:
    """What the executor recorded in the notebook's metadata (run_notebook's SealedEngine)."""
    try:
        meta = json.loads(executed.read_text()).get("metadata", {}).get("autograder", {})
    except (OSError, ValueError, AttributeError):
        return []
    flags = []   # (leftover_processes_killed is kept in the metadata only: DataLoader workers are innocent)
    if meta.get("outputs_cut"):
        flags.append(f"notebook_outputs_truncated ({meta['outputs_cut']} output(s) cut to the size limit)")
    return flags


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


def _student_cell(cell) -> bool:
    """A code cell the student wrote: an answer cell or one they added (the instructor's other
    cells carry a grade id, restored by sanitize; papermill's injected parameters are not theirs)."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and (bool(meta.get("solution")) or not meta.get("grade_id")) \
        and "injected-parameters" not in cell.metadata.get("tags", [])


def cell_duration(nb: nbformat.NotebookNode, tag: str) -> float | None:
    """Seconds of timed work, as papermill measured it: the cell carrying `tag` (or grade id)
    plus every cell the student wrote, wherever it is, so that training moved into another cell
    still counts. None unless the tagged cell completed without an error."""
    timed, student = None, 0.0
    for cell in nb.cells:
        pm = cell.metadata.get("papermill", {})
        tagged = tag in cell.metadata.get("tags", []) or cell.metadata.get("nbgrader", {}).get("grade_id") == tag
        if timed is None and tagged:
            raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            if pm.get("status") != "completed" or pm.get("duration") is None or raised:
                return None
            timed = float(pm["duration"])
        elif _student_cell(cell):
            student += float(pm.get("duration") or 0.0)
    return None if timed is None else timed + student
