"""Child process: execute one notebook with papermill. Run as
`python -P -m autograder.grading.run_notebook IN OUT PARAMS_JSON CELL_TIMEOUT`.

It runs in its own process (papermill's cwd changes the whole process) and usually inside the
sandbox. Cell errors are expected and stay in the output notebook (nbgrader semantics: every
cell runs, a failing test scores zero); only a failure of the run itself exits non-zero, with
one JSON line on stderr that the parent reads.

The kernel runs student code as the same user, so this process keeps what it records out of
the kernel's reach: it cannot be traced (not dumpable), `-P` keeps the working folder (where the
notebook can write modules) off its import path, a cell whose execution failed is recorded as
failed even when the kernel shows no traceback, outputs are capped, and when the run is over
every process the notebook left behind is killed before the final notebook is written, so
nothing can rewrite or redirect it afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_TIMEOUT, EXIT_DEAD_KERNEL, EXIT_OTHER = 0, 3, 4, 5
SANDBOX_ENV = "AUTOGRADER_SANDBOXED"   # set by the executor: we are alone in a pid namespace
MAX_TEXT = 64 * 1024                   # characters kept of one text output (head and tail)
MAX_DATA = 2 * 2**20                   # bytes of one rich output (a figure is ~50 kB)
MAX_OUTPUTS = 200                      # outputs kept per cell
MAX_CELL_BYTES = 512 * 1024            # all outputs of one cell together (as nbgrader's LimitOutput keeps one)
MAX_NOTEBOOK_BYTES = 8 * 2**20         # all outputs of the notebook (a student can add many cells)
ENGINE = "autograder"


def _not_traceable() -> None:
    """PR_SET_DUMPABLE=0: the kernel (same uid) can neither ptrace us nor read our memory."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _ancestors() -> set[int]:
    import psutil

    me = psutil.Process()
    try:
        return {me.pid, *(p.pid for p in me.parents())}
    except psutil.Error:
        return {me.pid, os.getppid()}


def _living_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["status"])
            if p.info["status"] not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)]


def stop_leftovers() -> int:
    """Kill every process of this sandbox but us and our ancestors (bwrap's init): what the
    notebook started and left running. Only inside the sandbox's own pid namespace."""
    if os.environ.get(SANDBOX_ENV) != "1":
        return 0
    keep, killed = _ancestors(), 0
    for _ in range(100):
        others = [pid for pid in _living_pids() if pid not in keep]
        if not others:
            break
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return killed


def _cap_text(text: str) -> tuple[str, bool]:
    if len(text) <= MAX_TEXT:
        return text, False
    head, tail = text[: MAX_TEXT - 8192], text[-8192:]
    return f"{head}\n[... {len(text) - MAX_TEXT:,} characters dropped by the grader ...]\n{tail}", True


def _size(out) -> int:
    return len(json.dumps(out, default=str))


def _within_budget(outputs: list, budget: int) -> int:
    """Keep outputs in order while their sum fits `budget`; replace the rest by one note (an error
    among them is kept, capped, so a failing cell still counts as failed). Returns how many were cut.
    Applied after the per-output caps, whatever the kernel's timing split the output into."""
    used, keep, dropped, errors = 0, [], 0, []
    for out in outputs:
        size = _size(out)
        if used + size <= budget:
            keep.append(out)
            used += size
        elif out.get("output_type") == "error":
            errors.append(out)
        else:
            dropped += 1
    if not dropped and not errors:
        return 0
    from nbformat import from_dict

    keep.append(from_dict({"output_type": "stream", "name": "stderr",
                           "text": f"[... {dropped} output(s) of this cell dropped by the grader: over {budget:,} bytes ...]\n"}))
    outputs[:] = keep + errors[:1]
    return dropped


def limit_outputs(cell, budget: int = MAX_CELL_BYTES) -> int:
    """Cap the outputs of one cell in place; return how many were cut."""
    outputs = cell.get("outputs") or []
    cut = max(0, len(outputs) - MAX_OUTPUTS)
    if cut:
        errors = [o for o in outputs[MAX_OUTPUTS:] if o.get("output_type") == "error"]
        del outputs[MAX_OUTPUTS:]
        outputs.extend(errors[:1])   # an error at the end still counts
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            out["text"], was_cut = _cap_text("".join(text) if isinstance(text, list) else text)
            cut += was_cut
        elif kind == "error":
            out["evalue"], was_cut = _cap_text(str(out.get("evalue", "")))
            lines = [str(line) for line in out.get("traceback", [])][-100:]
            joined, cut_tb = _cap_text("\n".join(lines))
            out["traceback"] = joined.split("\n") if cut_tb else lines
            cut += was_cut or cut_tb
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            size = sum(len(v if isinstance(v, str) else json.dumps(v)) for v in data.values())
            if size > MAX_DATA:
                out["data"] = {"text/plain": f"[an output of {size:,} bytes was dropped by the grader]"}
                out["metadata"] = {}
                cut += 1
            elif "text/plain" in data:
                text = data["text/plain"]
                data["text/plain"], was_cut = _cap_text("".join(text) if isinstance(text, list) else str(text))
                cut += was_cut
    return cut + _within_budget(outputs, budget)


def limit_notebook(nb, total: int = MAX_NOTEBOOK_BYTES) -> int:
    """The final pass: every cell within its own budget and the notebook within its total."""
    cut, remaining = 0, total
    for cell in nb.cells:
        cut += limit_outputs(cell, max(4096, min(MAX_CELL_BYTES, remaining)))
        remaining -= sum(_size(o) for o in cell.get("outputs") or [])
    return cut


def _on_cell_error(cell, cell_index, execute_reply):
    """The kernel said the cell failed: make sure the notebook says so, even when the notebook
    silenced its tracebacks (a test cell with no error output would count as passed)."""
    if not any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
        import nbformat

        content = execute_reply.get("content", {})
        cell.outputs.append(nbformat.v4.new_output(
            "error", ename=str(content.get("ename") or "Error")[:200], evalue=str(content.get("evalue") or "")[:2000],
            traceback=["The kernel reported an error in this cell but showed no traceback "
                       "(the grader added this error)."]))


def _on_cell_executed(cell, cell_index, execute_reply):
    limit_outputs(cell)


def _register_engine() -> None:
    from papermill.engines import NBClientEngine, papermill_engines

    class SealedEngine(NBClientEngine):
        """NBClientEngine that, once the kernel is gone and before papermill's final save, stops
        whatever the notebook left running and removes whatever sits at the output path."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            try:
                return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
            finally:
                killed = stop_leftovers()
                cut = limit_notebook(nb_man.nb)
                nb_man.nb.metadata["autograder"] = {"leftover_processes_killed": killed, "outputs_cut": cut}
                out = Path(nb_man.output_path)
                try:
                    os.chmod(out.parent, 0o755)
                    if out.is_symlink() or out.exists():
                        out.unlink()   # written afresh by papermill, never through a link
                except OSError:
                    pass

    papermill_engines.register(ENGINE, SealedEngine)


def main(argv: list[str]) -> int:
    _not_traceable()
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source, output, params_file, cell_timeout = argv
    out = Path(output)
    _register_engine()
    try:
        papermill.execute_notebook(
            source, output, parameters=json.loads(Path(params_file).read_text()),
            engine_name=ENGINE, kernel_name="python3", language="python", cwd=str(out.parent),
            execution_timeout=float(cell_timeout), allow_errors=True,
            progress_bar=False, log_output=False, request_save_on_cell_execute=True,
            # every output is in once the last cell has replied: stop the kernel at once rather
            # than wait for Python to tear down torch and matplotlib (1.5-2 s of CPU a notebook)
            shutdown_kernel="immediate",
            on_cell_error=_on_cell_error, on_cell_executed=_on_cell_executed)
    except PapermillExecutionError:
        return EXIT_OK  # errors are recorded in the cells
    except CellTimeoutError as exc:
        print(json.dumps({"error": "CellTimeoutError", "message": str(exc)[:500]}), file=sys.stderr)
        return EXIT_TIMEOUT
    except DeadKernelError as exc:
        print(json.dumps({"error": "DeadKernelError", "message": str(exc)[:500]}), file=sys.stderr)
        return EXIT_DEAD_KERNEL
    except Exception as exc:  # the child reports; the parent decides
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)[:500]}), file=sys.stderr)
        return EXIT_OTHER
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
