"""ResNet-50 on CSXA: the reference loop (data resident, channels-last, batch 50 on tiny / 64 on
full, weighted loss, no per-batch sync) on the tiny stand-in radiographs with the tiny network
(torchvision's ResNet-50 layout at 1/8 width; the full profile's real ResNet-50 needs the staged
ImageNet weights)."""

import torch
import torch.nn.functional as F

from autograder.datasets import load_split
from autograder.datasets.csxa import pretrained_resnet50
from autograder.student import select_device
from reference.resnet50_csxa import build_model, class_weights, train_model

SETTINGS = {  # batch, lr, step size, warm-up epochs, weight decay, frozen modules
    "tiny": (50, 0.02, 7, 2, 5e-4, ()),
    "full": (64, 0.01, 10, 1, 1e-4, ("conv1", "bn1", "layer1")),
}


def case(profile: str = "tiny") -> dict:
    train = load_split("csxa", "train", profile)
    device = select_device("auto")
    batch, lr, step, warm_up, decay, freeze = SETTINGS[profile]
    weights = class_weights(train.labels, len(train.classes))

    def make_model():
        return build_model(pretrained_resnet50(profile), len(train.classes), freeze)

    def reference_fit(model, split, epochs):
        train_model(model, split, None, epochs, batch, lr, step, weights, device, profile == "full", warm_up, decay)

    return {"name": "resnet50_csxa", "make_model": make_model, "train": train, "epochs": 3,
            "reference_fit": reference_fit,
            "loss": lambda logits, labels: F.cross_entropy(logits, labels, weight=weights.to(logits.device)),
            "optimizer": lambda params: torch.optim.SGD([p for p in params if p.requires_grad], lr=lr, momentum=0.9,
                                                        nesterov=True, weight_decay=decay)}
