"""The warm trusted evaluator (grading/warm_evaluator.py): a real exported LeNet-5 evaluated in forks
of one warm server, the same result as the cold `python -m autograder.grading.evaluate`; a fork
that breaks its limit is replaced once and then reported as the grader's failure; a dead server
is replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from autograder.grading import warm_evaluator
from autograder.grading.evaluate import EVAL_FILE, evaluate
from autograder.rubric import load_rubric
from autograder.student import export_for_grading
from reference.lenet5_mnist import LeNet5

from .conftest import REPO

RUBRIC = REPO / "rubrics" / "lenet5_mnist.yaml"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    torch.manual_seed(0)
    folder = export_for_grading(LeNet5(), torch.zeros(2, 1, 32, 32), root / "artifacts",
                                history={"train_loss": [2.3, 2.1], "val_accuracy": [0.1, 0.2]})
    cache = root / "cache"
    cache.mkdir()
    (cache / "secret_seed").write_text("4242")
    return folder, cache


def _evaluate(artifacts, out, **kw):
    folder, cache = artifacts
    return evaluate(folder, out, load_rubric(RUBRIC).evaluation_plan(), "tiny", None, cache, None, threads=1, **kw)


def test_warm_forks_give_the_cold_evaluators_result(artifacts, tmp_path):
    folder, cache = artifacts
    warm = [_evaluate(artifacts, tmp_path / f"warm{i}") for i in range(2)]
    subprocess.run([sys.executable, "-P", "-m", "autograder.grading.evaluate", "--artifacts", str(folder),
                    "--out", str(tmp_path / "cold"), "--rubric", str(RUBRIC), "--profile", "tiny",
                    "--cache-dir", str(cache)], check=True, cwd=REPO, capture_output=True)
    cold = json.loads((tmp_path / "cold" / EVAL_FILE).read_text())
    assert warm[0]["ok"] and warm[0]["test"]["confusion_matrix"] == cold["test"]["confusion_matrix"]
    assert warm[1]["test"] == warm[0]["test"] and warm[1]["history"] == cold["history"]
    assert (tmp_path / "warm1" / "confusion_matrix.png").is_file()


def test_a_fork_over_its_limit_is_retried_once_then_a_grader_error(artifacts, tmp_path):
    result = _evaluate(artifacts, tmp_path / "slow", timeout_s=0.05)
    assert not result["ok"] and "twice (timeout)" in result["grader_error"]
    assert "runner" in result["grader_error"]
    assert _evaluate(artifacts, tmp_path / "after")["ok"]     # the server lives on for the next one


def test_a_dead_server_is_replaced(artifacts, tmp_path):
    assert _evaluate(artifacts, tmp_path / "before")["ok"]
    server = warm_evaluator._zygote.proc
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    assert _evaluate(artifacts, tmp_path / "after")["ok"]
    assert warm_evaluator._zygote.proc.pid != server.pid
