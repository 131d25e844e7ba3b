# %% [markdown]
# # Transfer learning: a pre-trained VGG16 on flowers
#
# A network trained on ImageNet has learned features (edges, textures, object parts) that help
# on other image tasks too. Take VGG16, keep its convolutional layers **frozen**, replace its
# top layers with a small head for the five flower classes, and train only that head.
#
# Because the frozen backbone never changes, its output for an image never changes either:
# compute the backbone's features of every image **once**, keep them, and train the head on
# those cached features. Each epoch then costs a few small matrix products instead of a pass
# through 13 convolutional layers.
#
# The grader runs this notebook on a runner of its own, times the training cell, scores the
# exported model (backbone and head) on a held-out test split, and compares the exported
# backbone with the pre-trained weights to see that it stayed frozen. On the `tiny` profile the
# images are small generated drawings and the "pre-trained" weights are random (drawn with a
# fixed seed), a stand-in that runs in seconds on a CPU; `full` uses the real flower photos and
# ImageNet weights.
#
# Fill in every cell marked `YOUR CODE HERE` or `YOUR ANSWER HERE`; leave the other cells as
# they are (they are restored before grading).

# %% locked id=imports
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.datasets import load_split
from autograder.datasets.pretrained import pretrained_model
from autograder.student import export_for_grading, plot_history, select_device

if __name__ == "__main__":
    # %% parameters
    # Grading parameters: the grader injects its own values after this cell.
    profile = "tiny"          # "tiny": CPU, seconds, drawn flowers, random VGG16; "full": GPU runner, photos, ImageNet VGG16
    device = "auto"           # "auto" picks CUDA when a GPU is visible
    data_root = None          # folder holding flower_photos/ and torch/hub/checkpoints/ for the full profile
    artifact_dir = "artifacts"
    seed = 0

    # %% locked id=setup
    torch.manual_seed(seed)
    device = select_device(device)
    train_split = load_split("flowers", "train", profile, data_root)
    val_split = load_split("flowers", "val", profile, data_root)
    model = pretrained_model("vgg16", profile, data_root)   # ImageNet weights on full, seeded random weights on tiny
    print(f"{profile} profile on {device}: {len(train_split)} training and {len(val_split)} validation images "
          f"of size {tuple(train_split.images.shape[1:])}, classes {', '.join(train_split.classes)}")

# %% [markdown]
# ## 1. Freeze the backbone and replace the top
#
# torchvision's VGG16 has three parts: `features` (13 convolutions and 5 max-poolings: the
# backbone), `avgpool`, and `classifier` (three fully connected layers for ImageNet's 1,000
# classes: the top).
#
# * `freeze(module)`: no parameter of `module` gets a gradient any more.
# * `make_head(in_features, num_classes)`: the new top, a small MLP: batch normalization of the
#   `in_features` inputs (a frozen backbone's features can have any scale), a linear layer to 256
#   units, ReLU, dropout (p=0.5), and a linear layer to `num_classes` logits.
# * `adapt_vgg16(model, num_classes)`: freeze `model.features`, replace `model.avgpool` by a global
#   average pooling (`nn.AdaptiveAvgPool2d(1)`: one 512-vector per image, whatever the input size)
#   and `model.classifier` by your head; return the model. The result maps `N x 3 x H x W` images
#   to `N x num_classes` logits.

# %% solution id=replace_top
def freeze(module: nn.Module) -> None:
    ### BEGIN SOLUTION
    for p in module.parameters():
        p.requires_grad_(False)
    ### END SOLUTION


def make_head(in_features: int, num_classes: int) -> nn.Module:
    ### BEGIN SOLUTION
    return nn.Sequential(nn.BatchNorm1d(in_features), nn.Linear(in_features, 256), nn.ReLU(inplace=True),
                         nn.Dropout(0.5), nn.Linear(256, num_classes))
    ### END SOLUTION


def adapt_vgg16(model: nn.Module, num_classes: int) -> nn.Module:
    ### BEGIN SOLUTION
    freeze(model.features)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = make_head(512, num_classes)
    return model
    ### END SOLUTION

if __name__ == "__main__":
    # %% locked id=adapt
    start_weights = {k: v.clone() for k, v in model.features.state_dict().items()}   # to check the freeze
    model = adapt_vgg16(model, len(train_split.classes))

    # %% test id=test_replace_top
    assert model(train_split.images[:2]).shape == (2, len(train_split.classes)), "the model must output one logit per class"
    assert not any(p.requires_grad for p in model.features.parameters()), "every backbone parameter must be frozen"
    assert all(p.requires_grad for p in model.classifier.parameters()), "the new head must be trainable"
    print("frozen backbone and new head OK")
    ### BEGIN HIDDEN TESTS
    linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 256), (256, len(train_split.classes))], \
        "head: BatchNorm1d(512), Linear(512, 256), ReLU, Dropout, Linear(256, classes)"
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.classifier.modules()), "the head normalizes its inputs"
    assert any(isinstance(m, nn.Dropout) for m in model.classifier.modules()), "the head needs dropout"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 2 * 512 + 512 * 256 + 256 + 256 * len(train_split.classes) + len(train_split.classes), \
        "only the head may be trainable"
    ### END HIDDEN TESTS

# %% [markdown]
# ## 2. Compute the backbone's features once
#
# Write `extract_features(backbone, images, batch_size, device)`: run the frozen `backbone`
# (`features`, global pooling, flatten) over `images` in batches, without building a graph
# (`torch.no_grad()`), and return one `N x 512` float32 tensor on `device`. Move each batch to
# the device as you go (the images need not fit there at once). On a GPU, use bf16 autocast and
# channels-last memory format; on a CPU, plain float32.

# %% solution id=extract_features
def backbone_of(model: nn.Module) -> nn.Module:
    return nn.Sequential(model.features, model.avgpool, nn.Flatten())


def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    ### BEGIN SOLUTION
    cuda = device.type == "cuda"
    backbone = backbone.eval().to(device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    out = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            if cuda:
                batch = batch.contiguous(memory_format=torch.channels_last)
            out.append(backbone(batch).float())
    return torch.cat(out)
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_features
    few = extract_features(backbone_of(model), val_split.images[:5], 2, device)
    assert few.shape == (5, 512) and few.dtype == torch.float32, "N x 512 float32 features"
    with torch.no_grad():
        direct = backbone_of(model).eval().to(device)(val_split.images[:5].to(device))
    assert torch.allclose(few, direct.float(), rtol=0.05, atol=0.05 * direct.abs().max().item()), \
        "the features must be the backbone's output"
    print("features OK")
    ### BEGIN HIDDEN TESTS
    assert not few.requires_grad, "features are computed without a graph"
    assert few.device.type == device.type, "features stay on the device"
    ### END HIDDEN TESTS

# %% [markdown]
# ## 3. Train the head on the cached features
#
# Write `train_head`: the whole feature tensors are already on the device, so slice shuffled
# mini-batches from them (no DataLoader), train with Adam and cross-entropy, and record per
# epoch the mean training loss, the training accuracy and the validation accuracy. Avoid
# synchronizing with the device on every batch.

# %% solution id=train_head
def head_accuracy(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    head.eval()
    with torch.no_grad():
        return float((head(features).argmax(1) == labels).float().mean())


def train_head(head: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
               val_y: torch.Tensor, epochs: int, batch_size: int, lr: float, device) -> dict:
    """Train `head` and return {"train_loss": [...], "train_accuracy": [...], "val_accuracy": [...]}."""
    ### BEGIN SOLUTION
    head = head.to(device)
    train_y, val_y = train_y.to(device), val_y.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, fused=True)   # one kernel per tensor: steps are tiny
    history = {"train_loss": [], "train_accuracy": [], "val_accuracy": []}
    for _ in range(epochs):
        head.train()
        order = torch.randperm(len(train_y), device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for start in range(0, len(train_y), batch_size):
            idx = order[start:start + batch_size]
            logits = head(train_x[idx])
            loss = F.cross_entropy(logits, train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)          # stays on the device: no sync per batch
            correct += (logits.argmax(1) == train_y[idx]).sum()
        history["train_loss"].append(float(loss_sum) / len(train_y))
        history["train_accuracy"].append(float(correct) / len(train_y))
        history["val_accuracy"].append(head_accuracy(head, val_x, val_y))
    ### END SOLUTION
    return history

if __name__ == "__main__":
    # %% solution id=hyperparameters
    # Choose the training budget per profile (the tiny profile should train in seconds on a CPU).
    ### BEGIN SOLUTION
    EPOCHS = {"tiny": 30, "full": 30}[profile]
    BATCH_SIZE = 128
    LR = {"tiny": 3e-3, "full": 1e-3}[profile]
    ### END SOLUTION

    # %% train
    # The grader times this cell: the features are computed once, then only the head trains.
    start = time.perf_counter()
    backbone = backbone_of(model)
    train_features = extract_features(backbone, train_split.images, 256, device)
    val_features = extract_features(backbone, val_split.images, 256, device)
    history = train_head(model.classifier, train_features, train_split.labels, val_features, val_split.labels,
                         EPOCHS, BATCH_SIZE, LR, device)
    train_seconds = time.perf_counter() - start
    print(f"features of {len(train_features) + len(val_features)} images and {EPOCHS} epochs of the head in "
          f"{train_seconds:.1f} s, validation accuracy {history['val_accuracy'][-1]:.3f}")

    # %% test id=test_training
    assert len(history["val_accuracy"]) == EPOCHS, "one validation accuracy per epoch"
    assert history["train_loss"][-1] < history["train_loss"][0], "the training loss should decrease"
    assert history["val_accuracy"][-1] > 0.5, "the new head should be far better than chance (0.2)"
    print("training OK")
    ### BEGIN HIDDEN TESTS
    assert all(torch.equal(v, start_weights[k].to(v.device)) for k, v in model.features.state_dict().items()), \
        "the backbone's weights changed: it must stay frozen"
    assert abs(history["val_accuracy"][-1] - head_accuracy(model.classifier, val_features, val_split.labels.to(device))) < 1e-6, \
        "the reported validation accuracy must be that of the trained head"
    ### END HIDDEN TESTS

    # %% solution id=report
    # Report what you measured; the grader compares it with its own measurement.
    ### BEGIN SOLUTION
    reported = {"val_accuracy": history["val_accuracy"][-1], "train_seconds": train_seconds}
    print(f"Validation accuracy: {reported['val_accuracy']:.2%}  training time: {train_seconds:.1f} s")
    ### END SOLUTION

# %% [markdown]
# ## 4. Reflection
#
# Caching the features was only correct because the backbone was frozen. Explain why, and name
# one thing the cache rules out that you would normally use when training on few images. When
# would you unfreeze some of VGG16's convolutional layers as well, which ones first, and what
# would you change in the training to do it safely?

# %% answer id=reflection
# The cache is only valid because a frozen backbone is a fixed function: every image gives the
# same features in every epoch, so computing them once gives exactly what recomputing them per
# epoch would, at a fraction of the cost. The price is that each image is seen in exactly one
# version, so random data augmentation (crops, flips, colour jitter), which changes the input
# and therefore the features in every epoch, is ruled out; with a few thousand images that
# makes the head overfit sooner. I would unfreeze convolutional layers when the new images
# differ from ImageNet's (e.g. X-rays, or here once the head alone stops improving) and there
# are enough labelled images to adapt them. I would unfreeze the last block (conv5) first,
# because the early layers hold generic edges and textures while the last ones are the most
# ImageNet-specific. To do it safely I would first train the head on the frozen features, then
# fine-tune with a learning rate about ten times smaller for the unfrozen layers, with
# augmentation and early stopping on the validation accuracy, so the pre-trained weights are
# adjusted rather than destroyed by large gradients from a random head.

if __name__ == "__main__":
    # %% export
    # Exports the whole model (frozen backbone and trained head), the history and the curve. Do not edit.
    artifacts = export_for_grading(model, val_split.images, artifact_dir, history=history, reported=reported,
                                   figures={"training_curve": plot_history(history, "VGG16 head on cached features")})
    print(f"exported to {artifacts}")
