"""Build the bubblewrap command line that isolates an untrusted student notebook run.

The sandbox sees a read-only system (/usr, /etc, ...), the Python installation, the extra
read-only paths, a fresh /tmp and /dev/shm, and one writable workdir. Everything else,
including the user's home, is simply never mounted; `hidden` paths under a visible parent
are covered with an empty read-only tmpfs (directories) or /dev/null (files).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .limits import Limits, RunOutcome, run_limited
from .seccomp import fallocate_filter
from .tree import sweep

TMPFS_PERMS = "1777"
DIR_PERMS = "0755"  # bwrap running as root creates missing parent dirs 0700: unusable after dropping root
# Per-run uids for the sandboxed command when we are root: far above login uids and the usual
# subordinate-uid ranges, below 2**31 for tools that store uids as signed ints.
UID_RANGE = range(2_000_000_000, 2_100_000_000)
# The CUDA driver also needs these control nodes; other GPUs' /dev/nvidiaN stay absent.
NVIDIA_SHARED_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")


class SandboxUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class SandboxSpec:
    workdir: Path
    readonly: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    network: bool = False
    gpu: str | None = None  # index N of /dev/nvidiaN (the nvidia-smi index on usual machines)
    env: dict[str, str] = field(default_factory=dict)
    tmpfs_bytes: int = 2**30  # size of each of /tmp and /dev/shm: tmpfs is RAM the memory watchdog does not see


def bwrap_available() -> bool:
    """bwrap is installed, recent enough, and can create a sandbox on this machine."""
    return _bwrap_problem() is None


@functools.lru_cache(maxsize=1)
def _bwrap_problem() -> str | None:
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    usage = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    if "--size" not in usage:  # --size arrived with --perms for --tmpfs/--dir, both needed here
        return f"{exe} is too old (bubblewrap >= 0.8 is needed)"
    probe = [exe, "--unshare-pid", "--unshare-net", "--die-with-parent", *_system_args(), "true"]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        return f"{exe} cannot create a sandbox on this machine ({result.stderr.strip()})"
    return None


def _unavailable_message(problem: str) -> str:
    return (
        f"{problem}, so untrusted notebooks cannot be sandboxed. "
        "Install bubblewrap >= 0.8 (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`), "
        "or pass `--unsandboxed` to run notebooks without isolation (only for code you trust)."
    )


def _resolved(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _system_args() -> list[str]:
    """/usr and /etc read-only; /bin, /lib*, /sbin as on the host (symlinks on merged-/usr systems)."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _python_paths() -> list[Path]:
    """The installation running us (venv and base interpreter): the kernel runs on it."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return sorted({_resolved(p) for p in prefixes if Path(p).exists()})


def _gpu_args(gpu: str | None, dev: Path = Path("/dev")) -> tuple[list[str], dict[str, str]]:
    """Device binds and env that expose exactly one GPU (or none)."""
    if gpu is None:
        return [], {"CUDA_VISIBLE_DEVICES": ""}
    if not gpu.isdigit():
        raise ValueError(f"gpu must be the index of one GPU such as '0', got {gpu!r}")
    node = dev / f"nvidia{gpu}"
    if not node.exists():  # no NVIDIA device nodes here: rely on the environment variable alone
        return [], {"CUDA_VISIBLE_DEVICES": gpu}
    args: list[str] = []
    for path in [node, *(dev / name for name in NVIDIA_SHARED_NODES)]:
        if path.exists():
            args += ["--dev-bind", str(path), f"/dev/{path.name}"]
    # CUDA skips GPUs whose device node it cannot open, so the one left is device 0.
    return args, {"CUDA_VISIBLE_DEVICES": "0"}


def _mount_plan(spec: SandboxSpec) -> list[tuple[str, Path]]:
    """(kind, path) for the Python install, readonly paths, workdir and hidden paths.

    Sorted by depth so a deeper rule wins over its parent: a hidden folder inside a readonly
    path is covered, and a workdir inside a hidden folder is still mounted. At equal paths,
    hiding wins. A hidden path must exist when the sandbox starts: binds are live, so a file
    created later under a visible folder would show.
    """
    workdir = _resolved(spec.workdir)
    visible = [("ro", p) for p in _python_paths()]
    for path in spec.readonly:
        if not Path(path).exists():
            raise FileNotFoundError(f"sandbox readonly path does not exist: {path}")
        visible.append(("ro", _resolved(path)))
    visible.append(("rw", workdir))
    roots = [Path("/usr"), Path("/etc"), *(p for _, p in visible)]
    hidden = []
    for path in spec.hidden:
        real = _resolved(path)
        if real == workdir:
            raise ValueError(f"sandbox workdir {workdir} is also listed as hidden")
        # Nothing to cover if it does not exist or no visible parent would show it.
        if real.exists() and any(_is_within(real, root) for root in roots):
            hidden.append(("hide", real))
    order = {"ro": 0, "rw": 1, "hide": 2}
    return sorted(set(visible + hidden), key=lambda item: (len(item[1].parts), order[item[0]], item[1]))


def _mount_args(plan: list[tuple[str, Path]]) -> list[str]:
    args: list[str] = []
    made: set[Path] = set()
    for kind, path in plan:
        for parent in reversed(path.parents[:-1]):  # skip "/"
            if parent not in made:
                args += ["--perms", DIR_PERMS, "--dir", str(parent)]
                made.add(parent)
        if kind == "ro":
            args += ["--ro-bind", str(path), str(path)]
        elif kind == "rw":
            args += ["--bind", str(path), str(path)]
        elif path.is_dir():
            args += ["--perms", DIR_PERMS, "--tmpfs", str(path)]
        else:
            args += ["--ro-bind", "/dev/null", str(path)]
    # Remount hidden tmpfs read-only last: deeper mounts may still need dirs created in them.
    for kind, path in plan:
        if kind == "hide" and path.is_dir():
            args += ["--remount-ro", str(path)]
    return args


def _sandbox_env(spec: SandboxSpec, gpu_env: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(_resolved(spec.workdir)),
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        # The per-run uid has no passwd entry; getpass.getuser() (used by torch) reads these first.
        "USER": "student",
        "LOGNAME": "student",
    }
    return {**env, **gpu_env, **spec.env}


def _namespace_args(spec: SandboxSpec, uid: int | None) -> list[str]:
    if uid is None:
        # No uid switch: a user namespace and no capabilities (bwrap run by root keeps them all
        # by default, which would let the sandbox unmount the tmpfs hiding files).
        args = ["--unshare-all", "--cap-drop", "ALL"]
        return args + (["--share-net"] if spec.network else [])
    # setpriv needs real CAP_SETUID, so no user namespace; it drops every capability itself.
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += [] if spec.network else ["--unshare-net"]
    args += ["--cap-drop", "ALL"]
    for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
        args += ["--cap-add", cap]
    return args


def _setpriv_prefix(uid: int) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SandboxUnavailable(
            "setpriv (util-linux) is not installed; the sandbox needs it to drop root privileges. "
            "Install util-linux, or pass `--unsandboxed` to run notebooks without isolation."
        )
    return [
        _resolved(setpriv).as_posix(),
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def _check_readable_by_others(paths: tuple[Path, ...]) -> None:
    """The command runs as an unrelated uid, so readonly paths need read (and search) for others."""
    for path in paths:
        mode = os.stat(path).st_mode
        need = 0o005 if stat.S_ISDIR(mode) else 0o004
        if mode & need != need:
            raise PermissionError(
                f"sandbox readonly path {path} is not readable by other users (mode {stat.filemode(mode)}); "
                f"the sandboxed command runs as an unprivileged uid: `chmod o+rX {path}`"
            )


def sandbox_argv(argv: list[str], spec: SandboxSpec, *, uid: int | None = None) -> list[str]:
    """The full bwrap command line running argv inside the sandbox described by spec.

    uid: run the command as this unprivileged uid/gid (only when we are root; the workdir
    must then be writable by it, which run_sandboxed arranges).
    """
    workdir = _resolved(spec.workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"sandbox workdir is not a directory: {spec.workdir}")
    if uid is not None:
        _check_readable_by_others(spec.readonly)
    gpu_args, gpu_env = _gpu_args(spec.gpu)
    tmpfs_size = str(spec.tmpfs_bytes)
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, *_namespace_args(spec, uid), "--die-with-parent", "--new-session"]
    args += _system_args()
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", TMPFS_PERMS, "--size", tmpfs_size, "--tmpfs", "/dev/shm"]
    args += ["--perms", TMPFS_PERMS, "--size", tmpfs_size, "--tmpfs", "/tmp"]
    args += gpu_args
    args += _mount_args(_mount_plan(spec))
    args += ["--chdir", str(workdir), "--clearenv"]
    for name, value in _sandbox_env(spec, gpu_env).items():
        args += ["--setenv", name, value]
    command = [*_setpriv_prefix(uid), *argv] if uid is not None else list(argv)
    return [*args, "--", *command]


@contextlib.contextmanager
def _workdir_owned_by(workdir: Path, uid: int | None, swept: list[str] | None = None):
    """Lend the workdir to the sandbox uid for the run, then give everything back to its owner.

    Both walks are descriptor-relative and never follow links (tree.sweep); what the notebook
    left that cannot be given back (too deep, unreadable) is deleted and listed in `swept`."""
    if uid is None:
        yield
        return
    owner = os.stat(workdir)
    sweep(workdir, owner=(uid, uid))
    try:
        yield
    finally:
        removed = sweep(workdir, owner=(owner.st_uid, owner.st_gid))
        if swept is not None:
            swept += removed


def run_sandboxed(argv: list[str], spec: SandboxSpec, limits: Limits) -> RunOutcome:
    """run_limited(sandbox_argv(...)); as root, the command runs as a fresh unprivileged uid."""
    problem = _bwrap_problem()
    if problem:
        raise SandboxUnavailable(_unavailable_message(problem))
    uid = UID_RANGE[secrets.randbelow(len(UID_RANGE))] if os.geteuid() == 0 else None
    full_argv = sandbox_argv(argv, spec, uid=uid)
    workdir = _resolved(spec.workdir)
    swept: list[str] = []
    with fallocate_filter() as seccomp_fd, _workdir_owned_by(workdir, uid, swept):
        if seccomp_fd is not None:
            full_argv[1:1] = ["--seccomp", str(seccomp_fd)]
        outcome = run_limited(full_argv, limits, cwd=workdir, env={"PATH": "/usr/bin:/bin"},
                              pass_fds=() if seccomp_fd is None else (seccomp_fd,), disk_root=workdir)
    outcome.swept = swept
    return outcome
