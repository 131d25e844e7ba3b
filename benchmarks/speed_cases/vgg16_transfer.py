"""VGG16 transfer: the reference computes the frozen backbone's features once and trains only the
head on them (batch 128); the baseline pushes every batch through the whole frozen VGG16 each
epoch. On tiny: 300 drawn flowers of 32 x 32 and the seeded random-weight VGG16."""

import copy

import torch
import torch.nn.functional as F

from autograder.datasets import load_split
from autograder.datasets.pretrained import pretrained_model
from autograder.student import select_device
from reference.vgg16_transfer import adapt_vgg16, backbone_of, extract_features, make_head, train_head

LR = {"tiny": 3e-3, "full": 1e-3}


def case(profile: str = "tiny") -> dict:
    train = load_split("flowers", "train", profile)
    device = select_device("auto")
    classes = len(train.classes)
    # built once: a fresh model is a copy of the adapted backbone with a new head (VGG16's own
    # 120M-parameter classifier is dropped, so copies are cheap and do not weigh on the timing)
    base = adapt_vgg16(pretrained_model("vgg16", profile), classes)

    def make_model():
        model = copy.deepcopy(base)
        model.classifier = make_head(512, classes)
        return model

    def reference_fit(model, split, epochs):
        features = extract_features(backbone_of(model), split.images, 256, device)   # once, not per epoch
        # the head's per-epoch validation accuracy is taken on the training features: no extra pass
        train_head(model.classifier, features, split.labels, features, split.labels, epochs, 128, LR[profile], device)

    return {"name": "vgg16_transfer", "make_model": make_model, "train": train, "epochs": 5,
            "reference_fit": reference_fit, "loss": F.cross_entropy,
            "optimizer": lambda params: torch.optim.Adam([p for p in params if p.requires_grad], lr=LR[profile])}
