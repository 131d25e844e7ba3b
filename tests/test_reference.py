"""The reference solution is importable and testable without Jupyter; its export loads
in another process without the student's code."""

import json
import subprocess
import sys

import pytest
import torch

from autograder.datasets import load_split
from autograder.student import export_for_grading
from reference.lenet5_mnist import LeNet5, accuracy, train_model


def test_lenet5_is_faithful():
    net = LeNet5()
    assert sum(p.numel() for p in net.parameters()) == 61706
    assert net(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


@pytest.mark.slow
def test_training_learns_and_export_loads_elsewhere(tmp_path):
    torch.manual_seed(0)
    train, val = load_split("mnist", "train"), load_split("mnist", "val")
    model = LeNet5()
    history = train_model(model, train, val, epochs=4, batch_size=128, lr=3e-3, device=torch.device("cpu"))
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_accuracy"][-1] > 0.8
    out = export_for_grading(model, val.images, tmp_path, history=history, reported={"val_accuracy": 0.5})
    # a fresh interpreter that never imports the reference module scores the exported program
    code = ("import sys, torch; from autograder.datasets import load_split; v = load_split('mnist', 'val');"
            "m = torch.export.load(sys.argv[1]).module(); print((m(v.images).argmax(1) == v.labels).float().mean().item())")
    measured = float(subprocess.run([sys.executable, "-c", code, str(out / "model.pt2")], check=True,
                                    capture_output=True, text=True).stdout)
    assert abs(measured - accuracy(model, val.images, val.labels)) < 1e-6
    assert json.loads((out / "history.json").read_text())["val_accuracy"] == history["val_accuracy"]
