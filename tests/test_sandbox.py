"""The sandbox for untrusted notebooks: real bubblewrap, real limits, a real Jupyter kernel."""

from __future__ import annotations

import ast
import os
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.sandbox import (
    Limits,
    SandboxSpec,
    SandboxUnavailable,
    bwrap_available,
    run_limited,
    run_sandboxed,
    sandbox_argv,
)
from autograder.sandbox import bwrap as bwrap_module

needs_bwrap = pytest.mark.skipif(
    not bwrap_available(), reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the per-run uid (and its kernel task cap) is used only as root"
)

QUICK = Limits(wall_seconds=30)


def py(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)  # pytest makes it 0700; readonly paths must be readable by the sandbox uid
    path = tmp_path / "work"
    path.mkdir()
    return path


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if marker in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def wait_gone(marker: str, timeout: float = 3.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# ---------------------------------------------------------------- isolation


@needs_bwrap
def test_no_network_even_to_host_loopback(workdir):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0)
    port = server.getsockname()[1]
    code = """
        import socket, sys
        for host, port in [("127.0.0.1", int(sys.argv[1])), ("1.1.1.1", 53)]:
            try:
                socket.create_connection((host, port), timeout=2).close()
                print("connected", host)
            except OSError as e:
                print("blocked", host, type(e).__name__)
    """
    try:
        out = run_sandboxed(py(code, str(port)), SandboxSpec(workdir=workdir), QUICK)
        assert out.returncode == 0, out.stderr
        assert "connected" not in out.stdout
        assert out.stdout.count("blocked") == 2
        with pytest.raises(BlockingIOError):
            server.accept()
        # The flag really is what closes the network: with it, the host server is reachable.
        out = run_sandboxed(py(code, str(port)), SandboxSpec(workdir=workdir, network=True), QUICK)
        assert "connected 127.0.0.1" in out.stdout, out.stdout + out.stderr
    finally:
        server.close()


@needs_bwrap
def test_hidden_paths_are_unreadable_under_visible_parents(tmp_path, workdir):
    course = tmp_path / "course"
    (course / "tests").mkdir(parents=True)
    (course / "tests" / "hidden_test.py").write_text("SECRET")
    (course / "public.txt").write_text("PUBLIC")
    (tmp_path / "gradebook").mkdir()
    (tmp_path / "gradebook" / "grades.csv").write_text("SECRET")
    (tmp_path / "gradebook.db").write_text("SECRET")
    spec = SandboxSpec(
        workdir=workdir,
        readonly=(tmp_path, course),  # the workdir's parent and a course folder are visible...
        hidden=(tmp_path / "gradebook", course / "tests", tmp_path / "gradebook.db"),  # ...these are not
    )
    code = """
        import os, sys
        for path in sys.argv[1:]:
            try:
                print(path, "READ", open(path).read())
            except OSError as e:
                print(path, "denied", type(e).__name__)
        print("listing", sorted(os.listdir(os.path.dirname(sys.argv[1]))))
    """
    secrets = [course / "tests" / "hidden_test.py", tmp_path / "gradebook" / "grades.csv", tmp_path / "gradebook.db"]
    out = run_sandboxed(py(code, *map(str, secrets), str(course / "public.txt")), spec, QUICK)
    assert out.returncode == 0, out.stderr
    assert "SECRET" not in out.stdout
    assert out.stdout.count("denied") == 3
    assert "READ PUBLIC" in out.stdout
    assert "listing []" in out.stdout  # the hidden folder looks empty


UNMOUNT_AND_READ = """
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    print("umount", libc.umount2(sys.argv[1].encode(), 2), ctypes.get_errno())  # MNT_DETACH
    try:
        print("READ", open(sys.argv[2]).read())
    except OSError as e:
        print("denied", type(e).__name__)
"""


@needs_bwrap
@pytest.mark.parametrize("own_uid", [True, False], ids=["run_sandboxed", "user-namespace"])
def test_hiding_cannot_be_undone(tmp_path, workdir, own_uid):
    # bwrap started by root keeps every capability unless told otherwise; with CAP_SYS_ADMIN
    # the sandbox could unmount the tmpfs and read what it hides.
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("SECRET")
    spec = SandboxSpec(workdir=workdir, readonly=(tmp_path,), hidden=(tmp_path / "tests",))
    argv = py(UNMOUNT_AND_READ, str(tmp_path / "tests"), str(tmp_path / "tests" / "t.py"))
    if own_uid:
        out = run_sandboxed(argv, spec, QUICK)
    else:  # the other mode sandbox_argv supports: no uid switch, a user namespace without capabilities
        out = run_limited(sandbox_argv(argv, spec), QUICK, cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert "umount -1" in out.stdout
    assert "SECRET" not in out.stdout and "denied" in out.stdout


@needs_bwrap
def test_writes_only_in_workdir(tmp_path, workdir):
    shared = tmp_path / "shared"
    shared.mkdir()
    code = """
        import sys
        for path in sys.argv[1:]:
            try:
                with open(path, "w") as f:
                    f.write("written")
                print(path, "WROTE")
            except OSError as e:
                print(path, "refused", type(e).__name__)
    """
    targets = [shared / "x.txt", "/etc/x.txt", "/usr/x.txt", Path(sys.prefix) / "x.txt", workdir / "out.txt"]
    out = run_sandboxed(py(code, *map(str, targets)), SandboxSpec(workdir=workdir, readonly=(shared,)), QUICK)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("refused") == 4, out.stdout
    assert f"{workdir / 'out.txt'} WROTE" in out.stdout
    assert (workdir / "out.txt").read_text() == "written"
    assert not (shared / "x.txt").exists() and not Path("/etc/x.txt").exists()
    # The workdir was lent to the sandbox uid and given back, new files included.
    assert (workdir / "out.txt").stat().st_uid == workdir.stat().st_uid == os.geteuid()


@needs_root
def test_lending_the_workdir_does_not_follow_symlinks(tmp_path, workdir):
    # A symlink left in a reused workdir must not make run_sandboxed chown its target.
    outside = tmp_path / "outside.txt"
    outside.write_text("original")
    (workdir / "link").symlink_to(outside)
    (workdir / "linked_dir").symlink_to(tmp_path)
    with bwrap_module._workdir_owned_by(workdir, 2_000_000_321):
        assert (workdir / "link").lstat().st_uid == 2_000_000_321
        assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0
    assert (workdir / "link").lstat().st_uid == 0


@needs_bwrap
def test_home_invisible_beyond_python_install(workdir):
    home = Path.home()
    allowed = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)})
    code = """
        import os, sys
        home, allowed = sys.argv[1], sys.argv[2:]
        leaks = []
        for dirpath, dirnames, filenames in os.walk(home):
            leaks += [os.path.join(dirpath, f) for f in filenames]
            keep = []
            for d in dirnames:
                path = os.path.join(dirpath, d)
                if path in allowed:
                    continue  # the Python installation itself: visible on purpose
                if any(a.startswith(path + "/") for a in allowed):
                    keep.append(d)  # an ancestor of it
                else:
                    leaks.append(path)
            dirnames[:] = keep
        print("LEAKS", leaks)
    """
    out = run_sandboxed(py(code, str(home), *allowed), SandboxSpec(workdir=workdir), QUICK)
    assert out.returncode == 0, out.stderr
    assert "LEAKS []" in out.stdout, out.stdout


@needs_bwrap
@needs_root
def test_runs_unprivileged_without_capabilities(workdir):
    code = """
        import os
        caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")]
        try:
            open("/etc/shadow").read(); shadow = "READ"
        except OSError:
            shadow = "denied"
        print(os.getuid(), caps[0], shadow)
    """
    out = run_sandboxed(py(code), SandboxSpec(workdir=workdir), QUICK)
    uid, caps, shadow = out.stdout.split()
    assert int(uid) in bwrap_module.UID_RANGE
    assert int(caps, 16) == 0
    assert shadow == "denied"


# ---------------------------------------------------------------- limits

TREE_SCRIPT = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
marker, depth = sys.argv[1], int(sys.argv[2])
if depth == 0:
    os.setsid()  # the grandchild also leaves the process group
else:
    subprocess.Popen([sys.executable, __file__, marker, str(depth - 1)])
print("up", depth, flush=True)
while True:
    if depth < 2:
        time.sleep(0.1)  # the top process spins; its descendants just refuse to die
"""


@pytest.mark.parametrize("sandboxed", [pytest.param(True, marks=needs_bwrap), False])
def test_wall_limit_kills_whole_tree(workdir, sandboxed):
    script = workdir / "tree.py"
    script.write_text(TREE_SCRIPT)
    marker = f"marker-{uuid.uuid4()}"
    argv = [sys.executable, str(script), marker, "2"]
    limits = Limits(wall_seconds=3)
    if sandboxed:
        out = run_sandboxed(argv, SandboxSpec(workdir=workdir), limits)
    else:
        out = run_limited(argv, limits, cwd=workdir)
    assert "up 0" in out.stdout, out.stderr  # the grandchild was running
    assert out.timed_out and out.killed_reason == "timeout"
    assert out.returncode is None
    assert 3 <= out.wall_seconds < 6
    assert wait_gone(marker) == []


@needs_bwrap
def test_memory_hog_is_killed(workdir):
    code = """
        import time
        hog = [b"x" * (64 * 2**20) for _ in range(32)]  # 2 GiB, really touched
        time.sleep(60)
    """
    limit = 512 * 2**20
    out = run_sandboxed(py(code), SandboxSpec(workdir=workdir), Limits(wall_seconds=60, memory_bytes=limit))
    assert out.memory_exceeded and out.killed_reason == "memory"
    assert out.peak_memory_bytes > limit
    assert out.wall_seconds < 20


@needs_bwrap
def test_memory_shared_by_forked_workers_counts_once(workdir):
    # Like DataLoader workers: RSS would count the parent's 400 MB four times, PSS once.
    code = """
        import os, time
        data = b"x" * (400 * 2**20)
        for _ in range(3):
            if os.fork() == 0:
                time.sleep(1.5)
                os._exit(0)
        time.sleep(1.5)
        print("finished")
    """
    out = run_sandboxed(py(code), SandboxSpec(workdir=workdir), Limits(wall_seconds=30, memory_bytes=2**30))
    assert out.killed_reason is None and "finished" in out.stdout, out
    assert 400 * 2**20 < out.peak_memory_bytes < 2**30


FORK_BOMB = """
import os, sys, time
for _ in range(3000):  # bounded for safety
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError:
        time.sleep(0.01)  # the kernel cap refused a fork: keep trying, like a real bomb
time.sleep(60)
"""


@pytest.mark.parametrize("sandboxed", [pytest.param(True, marks=needs_bwrap), False])
def test_fork_bomb_is_stopped(workdir, sandboxed):
    marker = f"marker-{uuid.uuid4()}"
    argv = py(FORK_BOMB, marker)
    limits = Limits(wall_seconds=60, max_processes=64)
    if sandboxed:
        out = run_sandboxed(argv, SandboxSpec(workdir=workdir), limits)
    else:
        out = run_limited(argv, limits, cwd=workdir)
    assert out.too_many_processes and out.killed_reason == "processes"
    assert out.wall_seconds < 15
    # every bomb process is gone once init has reaped the orphans (it takes a moment here); counted
    # by the marker, since other work on the machine starts and stops processes meanwhile
    assert wait_gone(marker, timeout=10) == []
    assert psutil.virtual_memory().available > 2**30


@needs_bwrap
@needs_root  # unbounded: only safe with the kernel task cap, which needs the per-run uid
def test_shell_fork_bomb_is_contained(workdir):
    marker = f"marker-{uuid.uuid4()}"
    limits = Limits(wall_seconds=4, max_processes=64)
    out = run_sandboxed(["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 30", marker], SandboxSpec(workdir=workdir),
                        limits)
    # A poll that sees more than 64 processes kills the tree. A shell bomb's wave can also hit the
    # kernel task cap and burn itself out between two polls (0.1 s; about one run in three here):
    # then only the sleep is left, and the wall clock ends it. Either way the bomb was contained.
    # The watchdog's own kill is tested deterministically by the Python bomb above.
    assert out.killed_reason in ("processes", "timeout"), out
    assert out.wall_seconds < 10
    assert wait_gone(marker, timeout=10) == []   # sh's forks keep its argv, the marker with it


@needs_bwrap
@needs_root
def test_kernel_caps_tasks_beyond_the_watchdog(workdir):
    # Threads are invisible to the process-count watchdog; the kernel cap (RLIMIT_NPROC,
    # effective because the sandbox runs as its own uid) still bounds them.
    code = """
        import threading, time
        n = 0
        try:
            for _ in range(5000):
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                n += 1
        except RuntimeError:
            pass
        print("threads", n)
    """
    limits = Limits(wall_seconds=30, max_processes=16)
    out = run_sandboxed(py(code), SandboxSpec(workdir=workdir), limits)
    threads = int(out.stdout.split()[1])
    assert 0 < threads < 16 * 8


@needs_bwrap
def test_huge_output_is_truncated(workdir):
    code = """
        import sys
        block = b"y" * 2**20
        for _ in range(100):
            sys.stdout.buffer.write(block)
        sys.stderr.write("done\\n")
    """
    rss_before = psutil.Process().memory_info().rss
    limits = Limits(wall_seconds=60, max_output_bytes=8 * 2**20)
    out = run_sandboxed(py(code), SandboxSpec(workdir=workdir), limits)
    assert out.returncode == 0 and out.killed_reason is None
    assert out.output_truncated
    assert len(out.stdout) + len(out.stderr) <= 8 * 2**20
    assert psutil.Process().memory_info().rss - rss_before < 64 * 2**20


def test_small_output_is_complete(workdir):
    out = run_limited(py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"), QUICK, cwd=workdir)
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    assert not out.output_truncated and out.killed_reason is None


def test_file_size_limit(workdir):
    code = """
        try:
            open("big.bin", "wb").write(b"z" * 2**20)
        except OSError as e:
            print("refused", e.errno)
    """
    out = run_limited(py(code), Limits(max_file_bytes=2**16), cwd=workdir)
    assert "refused 27" in out.stdout  # EFBIG
    assert (workdir / "big.bin").stat().st_size <= 2**16


@needs_bwrap
def test_killing_its_parent_does_not_kill_the_caller(workdir):
    code = """
        import os, signal
        try:
            os.kill(os.getppid(), signal.SIGKILL)
        except OSError as e:
            print("refused", e)
        print("still here", os.getppid())
    """
    out = run_sandboxed(py(code), SandboxSpec(workdir=workdir), QUICK)
    # Inside the pid namespace the parent is the sandbox's init (pid 1): it belongs to root
    # (EPERM for the sandbox uid) and init ignores SIGKILL from its own namespace anyway.
    assert out.returncode == 0 and "still here 1" in out.stdout, out.stderr
    assert psutil.Process().is_running()


# ---------------------------------------------------------------- a real notebook


@needs_bwrap
def test_papermill_kernel_runs_inside_sandbox(workdir):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nanswer = 6 * 7"),
        nbformat.v4.new_code_cell("print(answer, os.getcwd())"),
    ]
    nbformat.write(nb, workdir / "in.ipynb")
    argv = [sys.executable, "-m", "papermill", "in.ipynb", "out.ipynb", "--kernel", "python3"]
    out = run_sandboxed(argv, SandboxSpec(workdir=workdir), Limits(wall_seconds=120))
    assert out.returncode == 0, out.stderr[-3000:]
    result = nbformat.read(workdir / "out.ipynb", as_version=4)
    assert result.cells[1].outputs[0]["text"].strip() == f"42 {workdir}"


@needs_bwrap
def test_graded_kernel_runs_torch_with_the_cpu_environment(workdir):
    """The kernels that train graded models get TORCH_CPU_ENV (passive OpenMP waiting, glibc
    keeping freed buffers), the environment the reference speed benchmark measures in."""
    from autograder.grading.cpu_env import TORCH_CPU_ENV
    from autograder.grading.execute import ExecutionSettings, execute
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"import os\nprint({{k: os.environ.get(k) for k in {sorted(TORCH_CPU_ENV)!r}}})")]
    run = execute(nb, workdir, "env", {}, ExecutionSettings(limits=Limits(wall_seconds=120), cell_timeout_s=60))
    assert run.status == "ok", run.message + run.stderr_tail
    printed = nbformat.read(run.executed, as_version=4).cells[0].outputs[0]["text"]
    assert ast.literal_eval(printed) == TORCH_CPU_ENV


# ---------------------------------------------------------------- the command line


def flag_pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_argv_isolation_flags(tmp_path, workdir):
    argv = sandbox_argv(["python", "x.py"], SandboxSpec(workdir=workdir, env={"SEED": "1"}))
    sep = argv.index("--")
    options, command = argv[:sep], argv[sep + 1 :]
    assert command == ["python", "x.py"]
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in options
    assert "--share-net" not in options
    assert flag_pairs(options, "--cap-drop") == ["ALL"]
    assert flag_pairs(options, "--bind") == [str(workdir)]
    assert str(Path(sys.base_prefix).resolve()) in flag_pairs(options, "--ro-bind")
    assert str(Path.home()) not in flag_pairs(options, "--ro-bind") + flag_pairs(options, "--bind")
    assert flag_pairs(options, "--chdir") == [str(workdir)]
    env = dict(zip(flag_pairs(options, "--setenv"), [options[i + 2] for i, a in enumerate(options) if a == "--setenv"]))
    assert env["HOME"] == str(workdir) and env["SEED"] == "1" and env["CUDA_VISIBLE_DEVICES"] == ""


def test_argv_as_other_uid(workdir):
    argv = sandbox_argv(["python"], SandboxSpec(workdir=workdir, network=True), uid=2_000_000_123)
    options = argv[: argv.index("--")]
    assert "--unshare-all" not in options and "--unshare-net" not in options
    assert "--unshare-pid" in options
    command = argv[argv.index("--") + 1 :]
    assert command[0].endswith("setpriv") and "--reuid=2000000123" in command and command[-1] == "python"


def test_argv_workdir_inside_hidden_folder_stays_mounted(tmp_path):
    submissions = tmp_path / "submissions"
    mine = submissions / "alice" / "run"
    mine.mkdir(parents=True)
    spec = SandboxSpec(workdir=mine, readonly=(tmp_path,), hidden=(submissions,))
    argv = sandbox_argv(["true"], spec)
    hide = argv.index(str(submissions))  # the --tmpfs covering the other submissions
    assert argv[hide - 1] == "--tmpfs"
    assert argv.index("--bind") > hide  # the workdir is mounted on top of it afterwards
    assert flag_pairs(argv, "--remount-ro") == [str(submissions)]


def test_gpu_exposes_one_device(tmp_path):
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    args, env = bwrap_module._gpu_args("1", dev=tmp_path)
    assert flag_pairs(args, "--dev-bind") == [str(tmp_path / n) for n in ("nvidia1", "nvidiactl", "nvidia-uvm")]
    assert env == {"CUDA_VISIBLE_DEVICES": "0"}  # the only device CUDA can open
    assert bwrap_module._gpu_args(None, dev=tmp_path) == ([], {"CUDA_VISIBLE_DEVICES": ""})
    assert bwrap_module._gpu_args("3", dev=tmp_path) == ([], {"CUDA_VISIBLE_DEVICES": "3"})  # no such node
    with pytest.raises(ValueError, match="one GPU"):
        bwrap_module._gpu_args("0,1", dev=tmp_path)


def test_missing_bwrap_raises_clear_error(monkeypatch, workdir):
    monkeypatch.setattr(bwrap_module.shutil, "which", lambda name: None)
    bwrap_module._bwrap_problem.cache_clear()
    try:
        assert not bwrap_available()
        with pytest.raises(SandboxUnavailable, match="--unsandboxed") as info:
            run_sandboxed(["true"], SandboxSpec(workdir=workdir), QUICK)
        assert "not installed" in str(info.value) and "apt-get install bubblewrap" in str(info.value)
    finally:
        bwrap_module._bwrap_problem.cache_clear()
