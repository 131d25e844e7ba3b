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
from ..sandbox.tree import remove_at, sweep
from ..safejson import read_json_file
from .cpu_env import GPU_SHARE_ENV, TORCH_CPU_ENV
from .run_notebook import EXIT_DEAD_KERNEL, EXIT_OK, EXIT_TIMEOUT, SANDBOX_ENV

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MAX_EXECUTED_BYTES = 256 * 2**20   # the file-size limit of the sandbox


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
    if reason == "disk":
        return "crashed", (f"stopped: wrote more than {settings.limits.max_disk_bytes / 2**30:.1f} GiB "
                           f"or {settings.limits.max_files} files into its folder")
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
    try:
        if settings.sandboxed:
            spec = SandboxSpec(workdir=workdir, readonly=(PACKAGE_DIR, *settings.readonly), gpu=settings.gpu,
                               env={**env, SANDBOX_ENV: "1"})
            outcome = run_sandboxed(argv, spec, settings.limits)
        else:
            outcome = run_limited(argv, settings.limits, cwd=workdir, env={**os.environ, **env}, disk_root=workdir)
    finally:
        removed = seal(workdir)   # before anything reads what the notebook left, even after an exception
    removed = sorted(set(removed) | set(outcome.swept))
    if outcome.killed_reason == "disk":   # what filled the disk is not kept: the grade needs none of it
        _clear(workdir, keep={source.name, executed.name, "parameters.json"})
    status, message = _classify(outcome, executed, settings)
    data = _read_executed(executed)
    if data is None and executed.exists():   # the notebook may have written anything there
        executed.unlink(missing_ok=True)
        if status == "ok":
            status, message = "crashed", ("the executed notebook cannot be read (not a notebook, too large or "
                                          "too deeply nested)")
    flags = ["output_truncated"] if outcome.output_truncated else []
    if removed:
        shown = ", ".join(r if len(r) <= 80 else r[:38] + "..." + r[-38:] for r in removed[:5]) \
            + (", ..." if len(removed) > 5 else "")
        flags.append(f"the notebook left {len(removed)} link(s) or special file(s) in its folder, removed "
                     f"before grading: {shown}")
    flags += _recorded_flags(data)
    return Execution(status, executed if data is not None else None, outcome.wall_seconds, message,
                     outcome.stderr[-2000:], outcome.peak_memory_bytes, flags)


def seal(workdir: Path) -> list[str]:
    """After the run, when nothing the notebook started is alive: delete every link, FIFO,
    socket or device it left in its folder (a reader outside the sandbox would follow or block
    on them), and whatever cannot be walked (folders nested too deeply, unreadable entries),
    and make the rest readable. The walk is descriptor-relative and never follows a link
    (sandbox.tree.sweep); it never raises. Returns the paths removed, relative to the folder."""
    return sweep(workdir, seal=True)


def _clear(workdir: Path, keep: set[str]) -> None:
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in os.listdir(fd):
            if name not in keep:
                remove_at(fd, name)
    finally:
        os.close(fd)


def _read_executed(executed: Path) -> dict | None:
    """The executed notebook, read like a submission (no link, a regular file, bounded size and
    depth) and valid as a notebook, as JSON; else None."""
    try:
        data = read_json_file(executed, MAX_EXECUTED_BYTES)
        nbformat.validate(nbformat.from_dict(data))
        return data
    except Exception:   # noqa: BLE001 - whatever the notebook left there, it is not graded
        return None


def _recorded_flags(data: dict | None) -> list[str]:
    """What the executor recorded in the notebook's metadata (run_notebook's SealedEngine)."""
    meta = (data or {}).get("metadata", {}).get("autograder", {})
    meta = meta if isinstance(meta, dict) else {}
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


# An instructor cell may take this much longer than in the reference run before the rest counts
# as training: machine noise on cells of a few milliseconds, and student code a test calls.
INSTRUCTOR_SLACK_FACTOR, INSTRUCTOR_SLACK_S = 1.5, 0.25


def cell_duration(nb: nbformat.NotebookNode, tag: str, reference: dict[str, float] | None = None) -> float | None:
    """Seconds of timed work, as papermill measured it: the cell carrying `tag` (or grade id),
    plus every cell the student wrote, wherever it is, so that training moved into another cell
    still counts, plus what each other instructor cell took beyond its duration in the reference
    run (`reference`: grade id -> seconds), so that training started in a thread and waited on
    by a test cell counts too. None unless the tagged cell completed without an error."""
    timed, student, excess = None, 0.0, 0.0
    for cell in nb.cells:
        pm = cell.metadata.get("papermill", {})
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        tagged = tag in cell.metadata.get("tags", []) or gid == tag
        if timed is None and tagged:
            raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            if pm.get("status") != "completed" or pm.get("duration") is None or raised:
                return None
            timed = float(pm["duration"])
        elif _student_cell(cell):
            student += float(pm.get("duration") or 0.0)
        elif reference is not None and gid and cell.cell_type == "code":
            allowed = INSTRUCTOR_SLACK_FACTOR * reference.get(gid, 0.0) + INSTRUCTOR_SLACK_S
            excess += max(0.0, float(pm.get("duration") or 0.0) - allowed)
    return None if timed is None else timed + student + excess
