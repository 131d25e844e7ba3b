"""LeNet-5: the reference loop (data resident and channels-last, batch 256, no per-batch sync) on
the tiny digits. Its per-epoch validation accuracy (216 images) is inside its timing; the
baseline has none."""

import torch
import torch.nn.functional as F

from autograder.datasets import load_split
from autograder.student import select_device
from reference.lenet5_mnist import LeNet5, train_model


def case(profile: str = "tiny") -> dict:
    train, val = load_split("mnist", "train", profile), load_split("mnist", "val", profile)
    device = select_device("auto")

    def reference_fit(model, split, epochs):
        train_model(model, split, val, epochs, batch_size=256, lr=3e-3, device=device)

    return {"name": "lenet5_mnist", "make_model": LeNet5, "train": train, "epochs": 6,
            "reference_fit": reference_fit, "loss": F.cross_entropy,
            "optimizer": lambda params: torch.optim.Adam(params, lr=3e-3)}
