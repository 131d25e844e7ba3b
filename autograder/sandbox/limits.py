"""Run a command under resource limits, with a watchdog that kills its whole process tree.

Kernel limits cover what the kernel enforces well (file size, core dumps, and the task
count once the command runs as a non-root uid); memory, process count and wall clock are
enforced by polling the process tree with psutil, because RLIMIT_AS breaks PyTorch/CUDA
and RLIMIT_NPROC never applies to root.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .tree import allocated_bytes

POLL_SECONDS = 0.1  # watchdog period: how far a fast allocator or fork loop can overshoot
DISK_POLL_SECONDS = 0.25  # the working folder's allocated blocks: a walk, so less often
# RLIMIT_NPROC counts threads, so the kernel cap leaves room for thread pools (torch, BLAS);
# it is a backstop that keeps pids available to the machine, the watchdog enforces max_processes.
TASKS_PER_PROCESS = 8
_READ_CHUNK = 64 * 1024
_DRAIN_SECONDS = 2.0  # after the tree is gone, how long to wait for pipes held by escaped processes
_KILL_ROUNDS = 50


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 600
    memory_bytes: int = 4 * 2**30
    max_processes: int = 256
    max_file_bytes: int = 256 * 2**20
    max_output_bytes: int = 8 * 2**20
    max_disk_bytes: int = 2 * 2**30     # allocated blocks under the working folder (polled)
    max_files: int = 20_000             # entries under the working folder (each one is polled)


@dataclass
class RunOutcome:
    returncode: int | None  # None when the watchdog killed the tree (the code would only be our SIGKILL)
    wall_seconds: float
    timed_out: bool
    memory_exceeded: bool
    too_many_processes: bool
    output_truncated: bool
    peak_memory_bytes: int
    stdout: str
    stderr: str
    disk_exceeded: bool = False
    peak_disk_bytes: int = 0
    swept: list[str] = field(default_factory=list)   # left by the run, deleted by the sandbox's walks

    @property
    def killed_reason(self) -> str | None:
        if self.timed_out:
            return "timeout"
        if self.memory_exceeded:
            return "memory"
        if self.too_many_processes:
            return "processes"
        if self.disk_exceeded:
            return "disk"
        return None


class _Capture:
    """stdout+stderr under one byte budget; the rest is read and dropped so the child never blocks."""

    def __init__(self, budget: int):
        self.budget = budget
        self.parts: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.truncated = False

    def add(self, stream: str, chunk: bytes) -> None:
        keep = chunk[: max(self.budget, 0)]
        self.budget -= len(keep)
        if keep:
            self.parts[stream].append(keep)
        if len(keep) < len(chunk):
            self.truncated = True

    def text(self, stream: str) -> str:
        return b"".join(self.parts[stream]).decode("utf-8", errors="replace")


class _Tree:
    """The child's process tree as seen from the host, remembered across polls.

    Remembering every process ever seen matters because a process whose parent died is
    reparented out of the tree (outside a pid namespace) and can only be found again here.
    """

    def __init__(self, pid: int, limits: Limits):
        self.pgid = pid  # start_new_session makes the child a group leader
        self.root = psutil.Process(pid)
        self.seen: set[psutil.Process] = {self.root}
        self.limits = limits
        self.peak_memory = 0

    def members(self) -> list[psutil.Process]:
        try:
            kids = self.root.children(recursive=True)
        except psutil.Error:
            kids = []
        self.seen.update(kids)
        return [self.root, *kids]

    def check(self) -> str | None:
        """Poll once; return "processes" or "memory" when a limit is exceeded."""
        procs = self.members()
        if len(procs) > self.limits.max_processes:
            return "processes"
        used = _memory(procs, exact=False)
        if used > self.limits.memory_bytes:
            # RSS counts pages shared by forked workers once per process; confirm with PSS.
            used = _memory(procs, exact=True)
        self.peak_memory = max(self.peak_memory, used)
        return "memory" if used > self.limits.memory_bytes else None

    def kill_all(self) -> None:
        """SIGKILL the group and every known descendant until none is left alive.

        Must run before the child is reaped: until then its pid, hence the group id, cannot be reused.
        """
        for _ in range(_KILL_ROUNDS):
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            alive = [p for p in {*self.members(), *self.seen} if _alive(p)]
            for proc in alive:
                try:
                    proc.kill()  # psutil refuses if the pid was reused by an unrelated process
                except psutil.Error:
                    pass
            if not alive:
                return
            time.sleep(0.01)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _memory(procs: list[psutil.Process], exact: bool) -> int:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss if exact else proc.memory_info().rss
        except (psutil.Error, AttributeError):  # gone, zombie, or no PSS on this platform
            pass
    return total


def _rlimit(value: int, kind: int) -> tuple[int, int]:
    """(value, value), lowered to the current hard limit, which only root may raise."""
    hard = resource.getrlimit(kind)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    return value, value


def _preexec(limits: Limits):
    # Computed before fork: the child should only make system calls.
    rlimits = [
        (resource.RLIMIT_FSIZE, _rlimit(limits.max_file_bytes, resource.RLIMIT_FSIZE)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if os.geteuid() == 0:
        # Root is exempt from RLIMIT_NPROC, but the limit is inherited and bites once the
        # sandbox drops to its own uid. For a normal user it would count all their processes.
        tasks = limits.max_processes * TASKS_PER_PROCESS
        rlimits.append((resource.RLIMIT_NPROC, (tasks, tasks)))

    def apply() -> None:
        for kind, value in rlimits:
            resource.setrlimit(kind, value)
        try:  # if the machine runs out of memory anyway, the kernel kills the student code first
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass

    return apply


def _exited(pid: int) -> bool:
    """Has the child exited? WNOWAIT leaves it unreaped so its pid/group id stays ours."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _pump(sel: selectors.BaseSelector, capture: _Capture, timeout: float) -> None:
    for key, _ in sel.select(max(timeout, 0)):
        chunk = os.read(key.fd, _READ_CHUNK)
        if chunk:
            capture.add(key.data, chunk)
        else:
            sel.unregister(key.fileobj)


class _Disk:
    """Allocated blocks under a folder, polled: the only bound on the total a run writes there
    (RLIMIT_FSIZE bounds each file, not their number; the sandbox refuses fallocate)."""

    def __init__(self, root: Path | None, limits: Limits):
        self.root, self.limits, self.peak, self.next = root, limits, 0, 0.0

    def check(self, now: float, final: bool = False) -> str | None:
        if self.root is None or (now < self.next and not final):
            return None
        self.next = now + DISK_POLL_SECONDS
        used, complete = allocated_bytes(self.root, max_entries=self.limits.max_files)
        self.peak = max(self.peak, used)
        return "disk" if used > self.limits.max_disk_bytes or not complete else None


def _supervise(proc: subprocess.Popen, tree: _Tree, disk: _Disk, sel, capture: _Capture,
               deadline: float) -> str | None:
    """Relay output and poll the tree until the child exits or a limit is hit."""
    next_check = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            return "timeout"
        if now >= next_check:
            reason = tree.check() or disk.check(now)
            if reason:
                return reason
            next_check = now + POLL_SECONDS
        if _exited(proc.pid):
            return None
        _pump(sel, capture, min(next_check, deadline) - now)


def _drain(sel: selectors.BaseSelector, capture: _Capture) -> None:
    deadline = time.monotonic() + _DRAIN_SECONDS
    while sel.get_map() and time.monotonic() < deadline:
        _pump(sel, capture, deadline - time.monotonic())


def run_limited(argv: list[str], limits: Limits, cwd: Path, env: dict[str, str] | None = None,
                pass_fds: tuple[int, ...] = (), disk_root: Path | None = None) -> RunOutcome:
    """Run argv to completion under limits. Never raises for the child's misbehaviour.

    env=None inherits the caller's environment, as subprocess does. disk_root: the folder whose
    allocated blocks count against max_disk_bytes (and entries against max_files).
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # own session and process group: killpg reaches the tree
        preexec_fn=_preexec(limits),
        pass_fds=pass_fds,
    )
    capture = _Capture(limits.max_output_bytes)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    reason = tree = None
    disk = _Disk(Path(disk_root) if disk_root else None, limits)
    try:
        tree = _Tree(proc.pid, limits)
        reason = _supervise(proc, tree, disk, sel, capture, start + limits.wall_seconds)
        # a run that wrote fast and ended between two polls is measured once more
        reason = reason or disk.check(time.monotonic(), final=True)
    finally:
        if tree is not None:
            tree.kill_all()  # on a limit, and also any leftovers of a normal exit
        else:
            proc.kill()  # psutil could not attach; the child is still unreaped, so this is safe
        _drain(sel, capture)
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
        proc.wait()
    return RunOutcome(
        returncode=None if reason else proc.returncode,
        wall_seconds=time.monotonic() - start,
        timed_out=reason == "timeout",
        memory_exceeded=reason == "memory",
        too_many_processes=reason == "processes",
        output_truncated=capture.truncated,
        peak_memory_bytes=tree.peak_memory if tree else 0,
        stdout=capture.text("stdout"),
        stderr=capture.text("stderr"),
        disk_exceeded=reason == "disk",
        peak_disk_bytes=disk.peak,
    )
