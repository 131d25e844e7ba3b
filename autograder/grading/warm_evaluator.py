"""A warm trusted evaluator: one fork server ("zygote") per grading process, with torch,
torch.export's loader, scikit-learn and matplotlib imported once; every evaluation runs in a fresh
fork of it.

Why a fork per evaluation rather than one long-lived loop: an evaluation parses hostile files (a
5 GB model, a malformed program, pickles), so it keeps its own process, time and memory limits,
and whatever it does dies with it; a fork costs milliseconds where a cold start cost seconds of
imports. The zygote runs no torch operation before forking, so no thread pool is copied half-made.
(Python's multiprocessing forkserver was tried: it re-imports the caller's main module in every
child, which here is pytest, the CLI or a Dask worker stub.) Nothing here runs student Python.

Parent <-> zygote: one JSON line per request on stdin; the zygote answers {"pid": N} when the
fork started and {"exit": code} when it ended. The parent watches the fork's tree with the same
watchdog as the sandbox (time, memory), kills it on a breach, and replaces a dead zygote.
"""

from __future__ import annotations

import json
import os
import platform
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path

from .cpu_env import TORCH_CPU_ENV

# Imported once in the zygote: what every evaluation needs (the slow imports of a cold start).
# (measured: a cold evaluation imports ~1,500 modules; these leave ~400 small ones to the fork)
PRELOAD = ("torch", "torch.export", "torch._dynamo", "torch._export.serde.serialize", "sympy", "networkx",
           "torch.ao.quantization.fx._decomposed", "numpy", "sklearn.metrics", "sklearn.datasets", "sklearn.model_selection", "matplotlib.pyplot",
           "matplotlib.backends.backend_agg", "PIL.PngImagePlugin", "autograder.rubric", "autograder.inquiry",
           "autograder.grading.evaluate", "autograder.grading.checks", "autograder.datasets")
ATTEMPTS = 2            # an evaluator that dies or hangs is replaced and the evaluation retried once
POLL_S = 0.1
START_TIMEOUT_S = 120


# ---- zygote side (python -P -m autograder.grading.warm_evaluator) ---------------------------

def _evaluate_in_fork(request: dict) -> int:
    """In the fork: its own process group (the parent kills all of it on a breach), the worker's
    thread share, then the evaluation exactly as `python -m autograder.grading.evaluate` does it."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)   # the zygote's answers go through fd 1: the fork must not write there
    try:
        import torch

        from .evaluate import EVAL_FILE, run

        if request.get("threads"):
            torch.set_num_threads(int(request["threads"]))
        a = request["args"]
        out = Path(a["out"])
        result = run(Path(a["artifacts"]), out, a["plan"], a["profile"], a["hidden_root"],
                     Path(a["cache_dir"]), a["data_root"], a.get("sandboxed", True), a.get("reference"))
        out.mkdir(parents=True, exist_ok=True)
        (out / EVAL_FILE).write_text(json.dumps(result, indent=1))
        return 0
    except BaseException:
        import traceback
        traceback.print_exc()
        return 1


def serve() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from ..datasets.registry import available

    available()   # every dataset module registers itself on import
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:          # EOF: the grading process is gone, and so are we
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _evaluate_in_fork(request)
            finally:
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


# ---- parent side ----------------------------------------------------------------------------

class _Zygote:
    def __init__(self):
        env = {**os.environ, **TORCH_CPU_ENV, "MPLBACKEND": "agg"}
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "autograder.grading.warm_evaluator"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                     cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        if self.read(START_TIMEOUT_S) is None:
            self.close()
            raise RuntimeError("the warm evaluator did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def read(self, timeout: float) -> dict | None:
        if not self.selector.select(timeout):
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


_zygote: _Zygote | None = None
_lock = threading.Lock()


def _running() -> _Zygote:
    global _zygote
    if _zygote is None or not _zygote.alive():
        _zygote = _Zygote()
    return _zygote


def prestart() -> None:
    """Start the zygote now (a task calls this while its notebook runs, when the worker is idle)."""
    with _lock:
        _running()


def _run_once(zygote: _Zygote, request: dict, timeout_s: float, memory_bytes: int) -> str | None:
    """One fork: None when it exited 0, else why not."""
    from ..sandbox import Limits
    from ..sandbox.limits import _Tree

    zygote.proc.stdin.write(json.dumps(request) + "\n")
    zygote.proc.stdin.flush()
    started = zygote.read(START_TIMEOUT_S)
    if not started or "pid" not in started:
        zygote.close()
        return "the evaluator's server died"
    limits = Limits(wall_seconds=timeout_s, memory_bytes=memory_bytes)
    deadline, tree, breach = time.monotonic() + timeout_s, None, None
    while True:
        answer = zygote.read(POLL_S)
        if answer is not None:
            return None if answer.get("exit") == 0 else breach or f"exit {answer.get('exit')}"
        if not zygote.alive():
            return "the evaluator's server died"
        if breach:
            continue
        try:
            tree = tree or _Tree(started["pid"], limits)
            breach = tree.check()
        except Exception:   # the fork ended between two looks
            continue
        if breach is None and time.monotonic() > deadline:
            breach = "timeout"
        if breach:
            tree.kill_all()


def evaluate_warm(args: dict, timeout_s: float, memory_bytes: int, threads: int | None) -> dict:
    """Evaluate in a fork of the warm zygote; a fork that dies, hangs or breaks a limit is
    replaced once, then reported as the grader's failure (`grader_error`)."""
    from .evaluate import EVAL_FILE

    report = Path(args["out"]) / EVAL_FILE
    why = ""
    with _lock:
        for _ in range(ATTEMPTS):
            report.unlink(missing_ok=True)
            try:
                why = _run_once(_running(), {"args": args, "threads": threads}, timeout_s, memory_bytes)
            except (OSError, RuntimeError, ValueError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if why is None and report.is_file():
                return json.loads(report.read_text())
            why = why or "no report written"
    return {"ok": False, "grader_error": f"the evaluator on runner {platform.node()} did not finish, twice ({why})"}


if __name__ == "__main__":
    serve()
