"""Adversarial suite: hostile and broken submissions graded in ONE batch next to an honest one,
sandboxed, through Dask, with short limits. Each must end with the right status, gain nothing,
and leave everything outside its own output folder untouched; the honest one is graded as usual.

The cohort is built in tests/adversarial_cohort.py; each hostile notebook prints what its attack
achieved (`ATTACK {...}`), so the assertions read the outcome from the executed notebook.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import nbformat
import pytest
from rich.console import Console

from autograder.grading.checks.context import EvalContext
from autograder.grading.results import RETRY_FLAGS
from autograder.sandbox.tree import allocated_bytes
from autograder.rubric import load_rubric

from . import adversarial_cohort as adv
from .conftest import SANDBOXED

pytestmark = pytest.mark.skipif(not SANDBOXED, reason="the adversarial suite needs bubblewrap (bwrap)")

A = adv.ASSIGNMENT
@pytest.fixture(scope="module")
def batch(adversarial_batch):
    """The cohort, graded once per session beside the demo's on one cluster (tests/conftest.py)."""
    return adversarial_batch


def parts(result) -> dict:
    return {p.id: p for p in result.parts}


def cell_points(result, grade_id: str) -> float:
    return parts(result)["tests"].details["cells"][grade_id]


def executed(result):
    path = Path(result.output_dir) / "work" / f"{A}.ipynb"
    return nbformat.read(path, as_version=4) if path.is_file() and not path.is_symlink() else None


def attack(result) -> dict:
    nb = executed(result)
    return adv.attack_report(nb) if nb else {}


EXPECTED_STATUS = {
    adv.HONEST: "graded", adv.VICTIM: "invalid",
    # sandbox attacks on an otherwise blank notebook: it fails at its first NotImplementedError
    "reads_secrets": "failed", "network": "failed", "writes_outside": "failed", "huge_output": "failed",
    "fork_bomb": "crashed", "memory_hog": "crashed", "kills_parent": "crashed",
    "exec_link": "crashed",
    # attacks on the test cells, with only the network written
    "edits_tests": "failed", "param_override": "failed", "wrong_kernel": "failed", "sys_exit": "failed",
    "no_tracebacks": "failed", "stderr_noise": "failed",
    # complete notebooks that lie or tamper with their export
    "fake_accuracy": "graded", "fake_timing": "graded", "monkeypatch": "graded", "pickles": "graded",
    "pt2_pickled_inputs": "graded", "pt2_reads_files": "graded", "links_and_forgery": "graded",
    # round two
    "deep_chain": "crashed", "fills_disk": "crashed", "thread_training": "graded", "memorises": "graded",
    "markup_message": "failed", "deep_json": "invalid", "nested_json": "invalid",
}


# ---------------------------------------------------------------- the batch as a whole

def test_every_submission_has_the_right_status(batch):
    statuses = {s: r.status for s, r in batch["by"].items()}
    assert set(statuses) == set(batch["students"]) - {adv.LOOKALIKE} == set(EXPECTED_STATUS)
    assert not any(RETRY_FLAGS & set(r.flags) for r in batch["by"].values())   # no grader error anywhere
    assert statuses == EXPECTED_STATUS, {s: (r.status, r.message) for s, r in batch["by"].items()
                                         if r.status != EXPECTED_STATUS.get(s)}


def test_the_honest_submission_is_graded_as_usual(batch):
    honest = batch["by"][adv.HONEST]
    p = parts(honest)
    assert p["tests"].points == p["tests"].max_points == 6
    assert p["accuracy"].points == 10 and honest.evaluation["test"]["accuracy"] >= 0.9
    assert p["timing"].points == 4, p["timing"].explanation
    assert honest.flags == []


def test_no_hostile_submission_scores_more_than_the_honest_one(batch):
    honest = batch["by"][adv.HONEST]
    for student, result in batch["by"].items():
        assert result.score <= honest.score, (student, result.score)
        for part in result.parts:  # part by part too: nothing is inflated anywhere
            best = parts(honest)[part.id].points or 0
            assert (part.points or 0) <= best, (student, part.id, part.points)


def test_nothing_outside_the_output_folders_changed(batch):
    """The work folder's course folders are compared byte for byte. The repository's are shared
    with other work in progress (a file may be rebuilt during the run), so a file there that
    changed must show no sign of a notebook: not owned by a sandbox uid, no planted text."""
    changed = {k for k in set(batch["before"]) | set(batch["after"]) if batch["before"].get(k) != batch["after"].get(k)}
    assert not changed
    assert batch["repo_after"] == batch["repo_before"]    # byte equality: nothing else writes there meanwhile
    import site
    assert not any((Path(p) / "sitecustomize.py").exists() for p in site.getsitepackages())
    assert batch["outside_after"] == batch["outside_before"] == ["forged.ipynb"]   # no payload ran outside
    assert not batch["host_tmp_planted"]


def test_no_secret_reaches_any_output(batch):
    """The secret seed, the hidden labels and the other student's file appear in no file the
    grading wrote for a hostile student: results, executed notebooks, artifacts, feedback."""
    work = batch["work"]
    secrets = [batch["secret"], adv.VICTIM_MARKER, "SQLite format 3", adv.HIDDEN_LABELS[:10].decode()]
    for student in batch["by"]:
        if student == adv.VICTIM:
            continue
        for folder in (work.autograded_dir / student, work.feedback_dir / student):
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink() and path.suffix in (".json", ".ipynb", ".html", ".txt"):
                    text = path.read_text(errors="replace")
                    for secret in secrets:
                        assert secret not in text, (student, path, secret)


# ---------------------------------------------------------------- the sandbox

def test_reading_hidden_files_gets_nothing(batch):
    leaks = attack(batch["by"]["reads_secrets"])
    assert leaks, "the reading notebook did not report"
    for name in ("secret", "secret_relative", "gradebook", "gradebook_relative", "hidden_labels", "victim",
                 "victim_relative", "source_notebook", "reference", "shadow"):
        assert leaks[name].startswith("DENIED"), (name, leaks[name])
    # only the folders leading to its own working folder exist: no other student, no course file
    assert leaks["listing_course"] == ["autograded"] and leaks["listing_students"] == ["reads_secrets"]
    assert leaks["listing_home"] == ["work"]
    assert leaks["listing_outside"].startswith("DENIED")


def test_no_network(batch):
    net = attack(batch["by"]["network"])
    assert net and all(v.startswith("DENIED") for v in net.values()), net
    assert batch["connections"] == 0


@pytest.mark.parametrize("student, words", [("fork_bomb", "processes"), ("memory_hog", "memory"),
                                            ("kills_parent", "")])
def test_resource_attacks_are_stopped(batch, student, words):
    result = batch["by"][student]
    assert words in result.message
    assert result.score == 0


def test_writes_outside_the_working_folder_fail(batch):
    writes = attack(batch["by"]["writes_outside"])
    for name in ("repo_rubric", "package", "sitecustomize", "release", "victim", "outside", "secret",
                 "chmod_package", "unlink_rubric", "mkdir_outside"):
        assert writes[name].startswith("DENIED"), (name, writes[name])
    # whatever did "succeed" (the sandbox's private /tmp) left nothing on the host: see the hash test


def test_huge_output_is_capped_and_flagged(batch):
    result = batch["by"]["huge_output"]
    assert "output_truncated" in result.flags                                   # the raw stdout
    assert any(f.startswith("notebook_outputs_truncated") for f in result.flags)  # the notebook's outputs
    notebook = Path(result.output_dir) / "work" / f"{A}.ipynb"
    assert notebook.stat().st_size < 2**20
    assert attack(result) == {"ran": True}   # the notebook went on running after its output was cut


# ---------------------------------------------------------------- the notebook

def test_deleted_and_edited_cells_are_restored(batch):
    result = batch["by"]["edits_tests"]
    assert "test_lenet5_architecture" in result.restored_cells
    assert {"test_training (was missing)", "export (was missing)", "setup (was missing)"} <= set(result.restored_cells)
    assert cell_points(result, "test_lenet5_architecture") == 0   # the wrong network fails the restored test


def test_grading_parameters_cannot_be_overridden(batch):
    result = batch["by"]["param_override"]
    nb = executed(result)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    injected = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert nb.cells[injected - 1].metadata["nbgrader"]["grade_id"] == "parameters"   # after the instructor's cell
    assert sum("parameters" in t for t in tags) == 1                                   # the student's tag is gone
    seen = attack(result)   # what the notebook saw after the parameters: the grader's values, not its own
    assert seen == {"artifact_dir": str(Path(result.output_dir) / "work" / "artifacts"), "profile": "tiny", "seed": 0}


def test_wrong_kernel_name_is_replaced(batch):
    result = batch["by"]["wrong_kernel"]
    assert executed(result).metadata["kernelspec"]["name"] == "python3"
    assert attack(result) == {"ran": True}


def test_exiting_early_or_hiding_tracebacks_does_not_pass_a_test(batch):
    for student in ("sys_exit", "no_tracebacks"):
        result = batch["by"][student]
        assert cell_points(result, "test_lenet5_architecture") == 0, student
        assert "test_lenet5_architecture" in {e["cell"] for e in result.cell_errors}, student
    exits = [e for e in batch["by"]["sys_exit"].cell_errors if e["ename"] == "SystemExit"]
    assert {e["cell"] for e in exits} >= {"test_lenet5_architecture"} and len(exits) == 2
    # with tracebacks hidden the failing cells still count as failed
    assert "NotImplementedError" in batch["by"]["no_tracebacks"].message


def test_warnings_on_stderr_do_not_zero_a_passing_test(batch):
    result = batch["by"]["stderr_noise"]
    nb = executed(result)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_lenet5_architecture")
    assert any(o.get("name") == "stderr" for o in test.outputs), "the noisy test wrote nothing to stderr"
    assert cell_points(result, "test_lenet5_architecture") == 3


# ---------------------------------------------------------------- claims

def test_fake_accuracy_is_flagged_and_not_believed(batch, course):
    result = batch["by"]["fake_accuracy"]
    assert any("reported validation accuracy 0.999" in f for f in result.flags)
    assert result.evaluation["val_accuracy"] < 0.95
    # the points are those of the band the measured test accuracy reaches, never of the claim
    measured = result.evaluation["test"]["accuracy"]
    bands = load_rubric(course.rubric_dir / f"{adv.ASSIGNMENT}.yaml").part("accuracy").bands["tiny"]
    part = parts(result)["accuracy"]
    assert part.details["value"] == measured < 0.95
    assert part.points == next((b.points for b in bands if measured >= b.bound), 0.0)


def test_training_outside_the_timed_cell_still_counts(batch):
    result = batch["by"]["fake_timing"]
    assert result.timings["train_s"] >= 8, result.timings        # the 'earlier' cell is part of the timed work
    nb = executed(result)
    assert sum("train" in c.metadata.get("tags", []) for c in nb.cells) == 1


def test_monkeypatching_the_kernel_changes_nothing_the_grader_measures(batch):
    result = batch["by"]["monkeypatch"]
    assert result.evaluation["test"]["accuracy"] < 0.5          # the untrained model, measured outside the kernel
    assert result.evaluation["reported"]["val_accuracy"] == 1.0
    assert parts(result)["accuracy"].points == 0 and parts(result)["timing"].points == 0
    assert any("differs from the measured" in f for f in result.flags)


# ---------------------------------------------------------------- the export

@pytest.mark.parametrize("student", ["pickles", "pt2_pickled_inputs", "pt2_reads_files"])
def test_malicious_exports_are_refused_without_running_them(batch, student):
    result = batch["by"][student]
    accuracy = parts(result)["accuracy"]
    assert accuracy.points == 0 and "could not be loaded" in accuracy.explanation, accuracy.explanation
    assert "test" not in result.evaluation


def test_pickled_tensors_are_not_unpickled(batch):
    artifacts = Path(batch["by"]["pickles"].output_dir) / "work" / "artifacts"
    ctx = EvalContext(artifacts, artifacts, "mnist", "tiny", None, None, 0)
    with pytest.raises(Exception):
        ctx.tensors("tensors.pt")
    assert batch["outside_after"] == ["forged.ipynb"]


def test_links_and_a_forging_process_are_defeated(batch):
    result = batch["by"]["links_and_forgery"]
    artifacts = Path(result.output_dir) / "work" / "artifacts"
    leftovers = [p for p in artifacts.rglob("*") if p.is_symlink() or (p.exists() and not (p.is_file() or p.is_dir()))]
    assert leftovers == []
    assert any("link" in f for f in result.flags), result.flags
    assert result.evaluation.get("history") == {} and result.evaluation.get("reported") == {}
    assert cell_points(result, "test_lenet5_architecture") == 0      # not the forged 'pass'
    assert result.timings["train_s"] > 0.05                         # not the forged 10 ms
    assert parts(result)["accuracy"].points > 0                     # its own real model is still scored


def test_a_linked_executed_notebook_is_not_read(batch):
    result = batch["by"]["exec_link"]
    assert result.score == 0
    assert not (Path(result.output_dir) / "work" / f"{A}.ipynb").is_symlink()


# ---------------------------------------------------------------- the evaluator's loader, directly

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import torch

    from autograder.student import export_for_grading

    folder = tmp_path_factory.mktemp("export")
    export_for_grading(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.zeros(2, 1, 2, 2), folder)
    return (folder / "model.pt2").read_bytes()


def _rewrite(data: bytes, transform) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            result = transform(info.filename, src.read(info.filename))
            if result is not None:
                z.writestr(info.filename, result)
    return out.getvalue()


class _Marker:
    path = ""

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


def _crafted(kind: str, data: bytes, marker: Path) -> bytes:
    _Marker.path = str(marker)
    code = f"open({str(marker)!r}, 'w').write('ran')"
    if kind == "pickled_inputs":
        return _rewrite(data, lambda n, b: pickle.dumps(_Marker()) if n.endswith("sample_inputs/model.pt") else b)
    if kind == "pickled_weights":
        def weights(name, blob):
            if name.endswith("model_weights_config.json"):
                cfg = json.loads(blob)
                for entry in cfg["config"].values():
                    entry["use_pickle"] = True
                return json.dumps(cfg).encode()
            return pickle.dumps(_Marker()) if "/data/weights/weight_" in name else blob
        return _rewrite(data, weights)
    if kind == "sympy":
        evil = json.dumps(f"(exec({code!r}) or Symbol)(")[1:-1].encode()
        return _rewrite(data, lambda n, b: b.replace(b"Symbol(", evil) if n.endswith("models/model.json") else b)
    if kind == "guards":
        def guards(name, blob):
            if name.endswith("models/model.json"):
                model = json.loads(blob)
                model["guards_code"] = [f"open('{marker}', 'w').write('ran') > 0"]
                return json.dumps(model).encode()
            return blob
        return _rewrite(data, guards)
    if kind == "aoti":
        prefix = zipfile.ZipFile(io.BytesIO(data)).namelist()[0].split("/")[0]
        out = io.BytesIO(data)
        with zipfile.ZipFile(out, "a") as z:
            z.writestr(f"{prefix}/data/aotinductor/model/model.so", b"\x7fELF")
        return out.getvalue()
    if kind == "raw_pickle":
        return pickle.dumps(_Marker())
    if kind == "not_a_zip":
        return b"\x00" * 100
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["pickled_inputs", "pickled_weights", "sympy", "guards", "aoti", "raw_pickle",
                                  "not_a_zip"])
def test_crafted_archives_are_refused_before_any_code_runs(exported, tmp_path, kind):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    marker = tmp_path / "marker"
    (artifacts / "model.pt2").write_bytes(_crafted(kind, exported, marker))
    ctx = EvalContext(artifacts, tmp_path, "mnist", "tiny", None, None, 0)
    with pytest.raises(Exception) as info:
        ctx.program().module()(__import__("torch").zeros(2, 1, 2, 2))
    assert not marker.exists(), f"{kind}: the crafted archive ran code ({info.value})"


def test_the_loader_still_loads_an_honest_export(exported, tmp_path):
    import torch

    (tmp_path / "model.pt2").write_bytes(exported)
    ctx = EvalContext(tmp_path, tmp_path, "mnist", "tiny", None, None, 0)
    assert ctx.program().module()(torch.zeros(5, 1, 2, 2)).shape == (5, 3)


def test_a_program_that_reads_files_is_refused(tmp_path):
    import torch

    @torch.library.register_fake("aten::from_file", allow_override=True)
    def _fake(filename, shared=None, size=0, *, dtype=None, layout=None, device=None, pin_memory=None):
        return torch.empty(size, dtype=dtype or torch.float32)

    class Snoop(torch.nn.Module):
        def forward(self, x):
            return x + torch.from_file(os.devnull, shared=False, size=0, dtype=torch.float32).sum()

    program = torch.export.export(Snoop(), (torch.zeros(2, 3),))
    torch.export.save(program, tmp_path / "model.pt2")
    ctx = EvalContext(tmp_path, tmp_path, "mnist", "tiny", None, None, 0)
    with pytest.raises(Exception, match="from_file"):
        ctx.program()


def test_artifacts_that_are_links_or_fifos_are_not_opened(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"val_accuracy": 0.123}')
    artifacts = tmp_path / "artifacts"
    (artifacts / "figures").mkdir(parents=True)
    (artifacts / "history.json").symlink_to(secret)
    (artifacts / "figures" / "training_curve.png").symlink_to(secret)
    os.mkfifo(artifacts / "reported.json")   # opening it would block the evaluator forever
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "tensors.pt").write_bytes(b"")
    (artifacts / "sub").symlink_to(tmp_path / "elsewhere")
    ctx = EvalContext(artifacts, tmp_path, "mnist", "tiny", None, None, 0)
    for call in (lambda: ctx.json("history.json"), lambda: ctx.json("reported.json"),
                 lambda: ctx.tensors("sub/tensors.pt"), lambda: ctx.json("../secret.json")):
        with pytest.raises(ValueError):
            call()
    assert ctx.figure("training_curve") is None


@pytest.mark.parametrize("content", [
    "[" * 100_000 + "]" * 100_000,                                   # nested too deeply
    '{"history": ' + "[1," * 10 + "1" + "]" * 10 + ', "x": "' + "a" * 2_000_000 + '"}',   # too large
    '{"val_accuracy": NaN, "train_loss": Infinity, "big": ' + "9" * 400 + ', "s": "' + "b" * 5000 + '"}',
    '["not", "an", "object"]', "{not json", "",
])
def test_weird_json_is_read_safely(tmp_path, content):
    from autograder.grading.evaluate import _plain_history, _plain_reported, _read_json

    (tmp_path / "reported.json").write_text(content)
    ctx = EvalContext(tmp_path, tmp_path, "mnist", "tiny", None, None, 0)
    data = _read_json(ctx, "reported.json")
    reported, history = _plain_reported(data), _plain_history(data)
    json.dumps([reported, history], allow_nan=False)   # plain, finite, JSON-safe
    assert all(len(str(v)) <= 200 for v in reported.values())


# ---------------------------------------------------------------- round two: each class and its rule

def _tree(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):   # os.walk never follows links
        for name in dirnames + filenames:
            yield Path(dirpath) / name


def test_no_link_or_special_file_anywhere_in_the_grader_outputs(batch):
    """Rule: whatever a notebook planted, nothing under autograded/ or feedback/ is a link,
    FIFO, socket or device afterwards (a later root tool would follow or block on it)."""
    work = batch["work"]
    for root in (work.autograded_dir, work.feedback_dir):
        odd = [p for p in _tree(root) if p.is_symlink() or not (p.is_file() or p.is_dir())]
        assert odd == [], odd[:5]


def test_no_process_is_left_and_disk_use_is_bounded(batch):
    assert batch["left"] == []
    used, complete = allocated_bytes(batch["work"].autograded_dir)
    assert complete and used < 2**30, used


def test_deep_chains_and_links_are_removed_and_nothing_is_published_from_them(batch):
    """Class 1: a tree deeper than PATH_MAX holding links, the executed notebook a link to the
    gradebook, the executor killed. The walks delete it; the run is the notebook's failure
    (crashed, not a grader error, so never retried), and nothing it left is published."""
    result = batch["by"]["deep_chain"]
    assert result.status == "crashed" and not RETRY_FLAGS & set(result.flags), (result.message, result.flags)
    assert any("removed before grading" in f and "secret_seed" in f for f in result.flags), result.flags
    work = Path(result.output_dir) / "work"
    assert not (work / f"{A}.ipynb").exists()
    published = batch["work"].autograded_dir / "deep_chain" / A / f"{A}.ipynb"
    assert not published.exists() or b"SQLite format 3" not in published.read_bytes()
    depth = max((len(p.relative_to(work).parts) for p in _tree(work)), default=0)
    assert depth <= 33


def test_disk_allocation_is_bounded(batch):
    """Class 3: fallocate is refused (no blocks reserved), and a notebook that writes file after
    file is stopped at the disk limit; what it wrote is not kept."""
    result = batch["by"]["fills_disk"]
    disk = attack(result)
    assert disk["fallocate"].startswith("DENIED") and disk["allocated"] < 2**20, disk
    assert result.status == "crashed" and "wrote more than" in result.message, result.message
    used, _ = allocated_bytes(Path(result.output_dir))
    assert used < 64 * 2**20


def test_the_sandbox_command_line_holds_no_secret(batch):
    """Item 8: /proc/1 in the sandbox shows bubblewrap's command line; nothing secret is passed there."""
    disk = attack(batch["by"]["fills_disk"])
    seen = disk["cmdline"] + disk["environ"]
    assert "--ro-bind" in disk["cmdline"]          # it is bubblewrap's command line that is visible
    for secret in (batch["secret"], str(batch["targets"].hidden_labels), "secret_seed", "gradebook"):
        assert secret not in seen, secret


def test_training_waited_on_by_an_instructor_cell_is_timed(batch):
    """Class 2: the train cell returns at once, the test cell waits 8 s for the thread: the
    excess of every instructor cell over the reference run counts as training time."""
    from autograder.grading.execute import cell_duration

    result = batch["by"]["thread_training"]
    assert result.timings["train_s"] >= 8, result.timings
    assert cell_duration(executed(result), "train") < 4    # what the old rule counted: the 8 s were elsewhere


def test_a_model_that_memorised_the_hidden_split_in_order_gains_nothing(batch):
    """Class 6: the hidden split is fed in a new order and in batches of random sizes, so labels
    memorised in file order are wrong, and a second ordering disagrees (flagged)."""
    result = batch["by"]["memorises"]
    assert result.evaluation["test"]["accuracy"] < 0.5, result.evaluation["test"]["accuracy"]
    assert parts(result)["accuracy"].points == 0
    assert any("order or batching" in f for f in result.flags), result.flags


def test_markup_in_a_student_message_is_shown_literally(batch):
    """Class 7: rich markup in an error message is data: the tables render it as text."""
    from autograder.cli import demo_table, summary_table

    result = batch["by"]["markup_message"]
    assert adv.MARKUP in result.message
    shown = []
    for table in (summary_table(list(batch["by"].values())), demo_table("x", list(batch["by"].values()))):
        console = Console(width=400, record=True, file=io.StringIO())
        console.print(table)          # raised MarkupError before
        shown.append(console.export_text())
    assert "ValueError: [/x] [bold red]all" in shown[0]    # the table keeps the first 90 characters


def test_deeply_nested_json_is_invalid_not_a_grader_error(batch):
    """Class 4: any parse failure of a submission is `invalid` for that submission alone."""
    for student in ("deep_json", "nested_json"):
        result = batch["by"][student]
        assert result.status == "invalid" and "nested" in result.message, (student, result.message)


def test_a_lookalike_student_id_is_not_graded(batch):
    """Class 5: a folder named with a Cyrillic look-alike of a student's id gets no grade, no
    gradebook row, no feedback; the batch says why."""
    from autograder.grading.record import final_scores

    work = batch["work"]
    assert adv.LOOKALIKE not in batch["by"]
    assert adv.LOOKALIKE not in final_scores(work, A)
    assert not (work.autograded_dir / adv.LOOKALIKE).exists() and not (work.feedback_dir / adv.LOOKALIKE).exists()
    assert any(repr(adv.LOOKALIKE) in line and "not a valid student id" in line for line in batch["logged"])
