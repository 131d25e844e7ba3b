"""GoogLeNet: the reference loop (data resident, channels-last also on a CPU, where max pooling is
several times faster that way, batch 100 on tiny / 256 on full, no per-batch sync) on the tiny
generated shapes with the tiny network (1/8 width, stride-2 stem)."""

import torch
import torch.nn.functional as F

from autograder.datasets import load_split
from autograder.student import select_device
from reference.googlenet_cifar10 import GoogLeNet, train_model

WIDTH = {"tiny": (1 / 8, 2), "full": (1.0, 1)}
BATCH_SIZE = {"tiny": 100, "full": 256}
LR = {"tiny": 0.1, "full": 0.2}


def case(profile: str = "tiny") -> dict:
    train = load_split("cifar10", "train", profile)
    device = select_device("auto")
    width, stem_stride = WIDTH[profile]

    def make_model():
        return GoogLeNet(width=width, stem_stride=stem_stride)

    def reference_fit(model, split, epochs):
        train_model(model, split, None, epochs, BATCH_SIZE[profile], LR[profile], device, augment=profile == "full")

    return {"name": "googlenet_cifar10", "make_model": make_model, "train": train, "epochs": 3,
            "reference_fit": reference_fit, "loss": F.cross_entropy,
            "optimizer": lambda params: torch.optim.SGD(params, lr=LR[profile], momentum=0.9, nesterov=True,
                                                        weight_decay=5e-4)}
