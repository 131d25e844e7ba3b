# %% [markdown]
# # ResNet-50 on the Cervical Spine X-ray Atlas
#
# Fine-tune an ImageNet ResNet-50 to classify the curvature of the cervical spine on lateral
# radiographs of the Cervical Spine X-ray Atlas (CSXA) into four classes: Lordotic, Straight,
# Sigmoid (the atlas's two Sigmoid grades merged) and Kyphotic. The classes are imbalanced, so
# accuracy alone says little: report the confusion matrix, the recall of every class and the
# macro-F1, and look at what the network looks at with Grad-CAM.
#
# For orientation, the published baseline on this task reaches 0.755 accuracy and 0.71 macro-F1,
# with a recall of only 0.29 for the Sigmoid class.
#
# The grader scores the exported model's macro-F1 and its lowest per-class recall on a held-out
# test split, compares your confusion matrix with its own predictions on the validation split,
# and compares your Grad-CAM heatmaps with a Grad-CAM it computes itself on the same layer.
#
# Fill in every cell marked `YOUR CODE HERE` or `YOUR ANSWER HERE`; leave the other cells as
# they are (they are restored before grading).

# %% locked id=imports
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, f1_score

from autograder.datasets import Split, load_split
from autograder.datasets.csxa import pretrained_resnet50
from autograder.student import export_for_grading, select_device

if __name__ == "__main__":
    # %% parameters
    # Grading parameters: the grader injects its own values after this cell.
    profile = "tiny"          # "tiny": CPU, seconds, generated radiographs; "full": GPU runner, the real atlas
    device = "auto"           # "auto" picks CUDA when a GPU is visible
    data_root = None          # folder holding csxa/ (and hub/checkpoints/ with the ImageNet weights) for full
    artifact_dir = "artifacts"
    seed = 0

    # %% locked id=setup
    torch.manual_seed(seed)
    device = select_device(device)
    train_split = load_split("csxa", "train", profile, data_root)
    val_split = load_split("csxa", "val", profile, data_root)
    CLASSES = train_split.classes
    # Grad-CAM's layer: ResNet-50's last stage on the 224-pixel radiographs (7 x 7 maps). The tiny
    # profile's 64-pixel images leave layer4 a 2 x 2 map, too coarse to show anything, so it uses
    # layer1 (16 x 16).
    CAM_LAYER = {"tiny": "layer1", "full": "layer4"}[profile]
    counts = torch.bincount(train_split.labels, minlength=len(CLASSES)).tolist()
    print(f"{profile} profile on {device}: {len(train_split)} training and {len(val_split)} validation images")
    print("training images per class:", dict(zip(CLASSES, counts)))

# %% [markdown]
# ## 1. The network
#
# `pretrained_resnet50(profile, data_root)` gives torchvision's ResNet-50 with its ImageNet weights
# (read from the course's data root, never downloaded). On the tiny profile it gives the same
# layout at 1/8 width with random weights: there are no ImageNet weights for tiny, and the real
# network would need minutes per epoch on a CPU.
#
# Write `build_model(backbone, num_classes, freeze)` that adapts it to X-rays:
#
# 1. the radiographs have one channel: replace `conv1` by a convolution with one input channel and
#    otherwise the same settings, whose weights are the sum of the pretrained weights over the three
#    colour channels (a gray image copied into R, G and B gives the same response);
# 2. replace `fc` by a linear layer with `num_classes` outputs;
# 3. freeze (no gradient) the top-level modules named in `freeze`, e.g. `("conv1", "bn1", "layer1")`.

# %% solution id=build_model
def build_model(backbone: nn.Module, num_classes: int = 4, freeze: tuple[str, ...] = ()) -> nn.Module:
    ### BEGIN SOLUTION
    rgb = backbone.conv1
    gray = nn.Conv2d(1, rgb.out_channels, rgb.kernel_size, rgb.stride, rgb.padding, bias=False)
    with torch.no_grad():
        gray.weight.copy_(rgb.weight.sum(dim=1, keepdim=True))
    backbone.conv1 = gray
    backbone.fc = nn.Linear(backbone.fc.in_features, num_classes)
    for name in freeze:
        getattr(backbone, name).requires_grad_(False)
    return backbone
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_model
    backbone = pretrained_resnet50(profile, data_root)
    rgb_weights = backbone.conv1.weight.detach().clone()
    net = build_model(backbone, len(CLASSES), ("conv1", "bn1", "layer1"))
    assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 4), "the model maps N x 1 x H x W to N x 4 logits"
    assert not any(p.requires_grad for p in net.layer1.parameters()), "layer1 should be frozen"
    assert all(p.requires_grad for p in net.layer4.parameters()), "layer4 should be trainable"
    print("model OK")
    ### BEGIN HIDDEN TESTS
    assert [len(net.layer1), len(net.layer2), len(net.layer3), len(net.layer4)] == [3, 4, 6, 3], "ResNet-50's blocks"
    assert torch.allclose(net.conv1.weight, rgb_weights.sum(1, keepdim=True)), "conv1 holds the summed RGB weights"
    assert net.conv1.stride == (2, 2) and net.conv1.kernel_size == (7, 7), "conv1 keeps its 7x7 stride-2 settings"
    assert net.fc.out_features == 4 and net.fc.in_features == backbone.fc.in_features
    ### END HIDDEN TESTS

# %% [markdown]
# ## 2. Class imbalance
#
# Kyphotic spines are about a tenth of the atlas, Lordotic and Straight a third each. A network
# trained with the plain cross-entropy can ignore a rare class and still score well on accuracy.
# Write `class_weights(labels, num_classes)`: the weight of class c is N / (K * n_c) (N images,
# K classes, n_c images of class c), so each class contributes equally to a weighted loss.

# %% solution id=class_weights
def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    ### BEGIN SOLUTION
    counts = torch.bincount(labels, minlength=num_classes).float()
    return len(labels) / (num_classes * counts.clamp_min(1))
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_class_weights
    w = class_weights(torch.tensor([0, 0, 0, 1]), 2)
    assert torch.allclose(w, torch.tensor([2 / 3, 2.0])), "N / (K * n_c)"
    print("class weights:", dict(zip(CLASSES, class_weights(train_split.labels, len(CLASSES)).tolist())))
    ### BEGIN HIDDEN TESTS
    w = class_weights(train_split.labels, len(CLASSES))
    assert w.argmax().item() == torch.bincount(train_split.labels).argmin().item(), "the rarest class weighs most"
    ### END HIDDEN TESTS

# %% [markdown]
# ## 3. Training
#
# Write `train_model`: SGD with Nesterov momentum 0.9 and weight decay on the trainable parameters,
# the learning rate rising linearly over the first `warm_up_epochs` (a large step on fresh layers
# wrecks the batch-norm statistics) and then decaying step-wise (times 0.1 every `step_size`
# epochs), and the weighted cross-entropy. Keep the data on the device and slice shuffled mini-batches; with
# `augment=True`, flip each batch horizontally at random and shift it by up to 8 % (on the device).
# Keep the batch-norm layers of frozen modules in evaluation mode. After every epoch record the
# mean training loss and, on the validation split, the (weighted) loss, the accuracy and the
# macro-F1. Early stopping's checkpoint: remember the weights of the epoch with the lowest
# validation loss and restore them at the end; return the history and that epoch (1-based).
# Use bf16 autocast on a GPU and channels-last tensors, and no per-batch synchronization.

# %% solution id=train_model
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits (float32) of `model` for resident `images`, in evaluation mode."""
    ### BEGIN SOLUTION
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        return torch.cat([model(images[i:i + batch_size]).float() for i in range(0, len(images), batch_size)])
    ### END SOLUTION


def shift_flip(x: torch.Tensor, fraction: float = 0.08) -> torch.Tensor:
    """Random horizontal flip and shift (up to `fraction` of the side) of a batch, on its device."""
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    pad = max(1, int(fraction * h))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device).view(1, 1, h, 1)).expand(n, c, h, w + 2 * pad)
    cols = (dx + torch.arange(w, device=x.device).view(1, 1, 1, w)).expand(n, c, h, w)
    shifted = padded.gather(2, rows).gather(3, cols)
    flip = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, shifted.flip(3), shifted).contiguous(memory_format=torch.channels_last)
    ### END SOLUTION


def train_model(model: nn.Module, train: Split, val: Split | None, epochs: int, batch_size: int, lr: float,
                step_size: int, weights: torch.Tensor, device: torch.device, augment: bool = False,
                warm_up_epochs: int = 1, weight_decay: float = 1e-4) -> tuple[dict, int]:
    """Returns ({"train_loss", "val_loss", "val_accuracy", "val_macro_f1"}, the best epoch)."""
    ### BEGIN SOLUTION
    cuda = device.type == "cuda"
    model.to(device, memory_format=torch.channels_last)
    x, y = train.images.to(device, memory_format=torch.channels_last), train.labels.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    warm_up = warm_up_epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(   # linear warm-up, then times 0.1 every step_size epochs
        optimizer, lambda step: min(1.0, (step + 1) / warm_up) * 0.1 ** (step // (step_size * steps_per_epoch)))
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device))
    frozen_bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad]
    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "val_macro_f1": []}
    best_loss, best_state, best_epoch = float("inf"), None, epochs
    for epoch in range(epochs):
        model.train()
        for m in frozen_bn:
            m.eval()
        order = torch.randperm(len(y), device=device)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            images = shift_flip(x[idx]) if augment else x[idx]
            with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
                loss = loss_fn(model(images).float(), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(idx)        # stays on the device: no sync per batch
        history["train_loss"].append(float(loss_sum) / len(y))
        if val is None:
            continue
        logits = predict(model, val.images.to(device, memory_format=torch.channels_last))
        val_loss = float(loss_fn(logits, val.labels.to(device)))
        predicted = logits.argmax(1).cpu()
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(float((predicted == val.labels).float().mean()))
        history["val_macro_f1"].append(float(f1_score(val.labels, predicted, average="macro", zero_division=0)))
        if val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(model.state_dict()), epoch + 1
    if best_state is not None:
        model.load_state_dict(best_state)
    ### END SOLUTION
    return history, best_epoch

if __name__ == "__main__":
    # %% solution id=hyperparameters
    # The training budget per profile (the tiny profile should train in seconds on a CPU): define
    # EPOCHS, BATCH_SIZE, LR, STEP_SIZE, WARM_UP (epochs), WEIGHT_DECAY, FREEZE (module names), AUGMENT.
    ### BEGIN SOLUTION
    EPOCHS = {"tiny": 10, "full": 30}[profile]
    BATCH_SIZE = {"tiny": 50, "full": 64}[profile]
    LR = {"tiny": 0.02, "full": 0.01}[profile]
    STEP_SIZE = {"tiny": 7, "full": 10}[profile]
    WARM_UP = {"tiny": 2, "full": 1}[profile]
    WEIGHT_DECAY = {"tiny": 5e-4, "full": 1e-4}[profile]
    # tiny starts from random weights: everything trains. full keeps the generic first stage frozen.
    FREEZE = {"tiny": (), "full": ("conv1", "bn1", "layer1")}[profile]
    AUGMENT = profile == "full"
    ### END SOLUTION
    weights = class_weights(train_split.labels, len(CLASSES))
    if device.type == "cuda":  # pick the cuDNN kernels before the timed cell
        torch.backends.cudnn.benchmark = True
        warm = Split(train_split.images[:2 * BATCH_SIZE], train_split.labels[:2 * BATCH_SIZE], CLASSES)
        train_model(build_model(pretrained_resnet50(profile, data_root), len(CLASSES), FREEZE), warm, None,
                    1, BATCH_SIZE, LR, STEP_SIZE, weights, device, AUGMENT, WARM_UP, WEIGHT_DECAY)

    # %% train
    # The grader times this cell.
    model = build_model(pretrained_resnet50(profile, data_root), len(CLASSES), FREEZE)
    start = time.perf_counter()
    history, best_epoch = train_model(model, train_split, val_split, EPOCHS, BATCH_SIZE, LR, STEP_SIZE,
                                      weights, device, AUGMENT, WARM_UP, WEIGHT_DECAY)
    train_seconds = time.perf_counter() - start
    print(f"{EPOCHS} epochs in {train_seconds:.1f} s; lowest validation loss at epoch {best_epoch}, "
          f"macro-F1 there {history['val_macro_f1'][best_epoch - 1]:.3f}")

    # %% test id=test_training
    assert len(history["val_loss"]) == len(history["train_loss"]) == EPOCHS, "one value per epoch"
    assert history["train_loss"][-1] < history["train_loss"][0], "the training loss should decrease"
    assert 1 <= best_epoch <= EPOCHS and history["val_loss"][best_epoch - 1] == min(history["val_loss"])
    print("training OK")
    ### BEGIN HIDDEN TESTS
    restored = predict(model, val_split.images.to(device, memory_format=torch.channels_last)).argmax(1).cpu()
    assert abs(float((restored == val_split.labels).float().mean()) - history["val_accuracy"][best_epoch - 1]) < 1e-6, \
        "the model must hold the weights of the best epoch"
    ### END HIDDEN TESTS

# %% [markdown]
# ## 4. Confusion matrix, recall per class, macro-F1
#
# On the validation split, compute the predictions `val_predicted`, the confusion matrix
# `val_confusion` (a NumPy array of counts, `val_confusion[true, predicted]`), the recall of every
# class `val_recall`, the macro-F1 `val_macro_f1` and the accuracy `val_accuracy`. Plot the confusion
# matrix normalized by rows (each row divided by its class count, so the diagonal is the recall),
# with class names and the counts in the cells, as `confusion_figure`.

if __name__ == "__main__":
    # %% solution id=evaluation
    ### BEGIN SOLUTION
    val_logits = predict(model, val_split.images.to(device, memory_format=torch.channels_last)).cpu()
    val_predicted = val_logits.argmax(1)
    val_confusion = confusion_matrix(val_split.labels, val_predicted, labels=range(len(CLASSES)))
    val_recall = val_confusion.diagonal() / np.maximum(val_confusion.sum(1), 1)
    val_macro_f1 = f1_score(val_split.labels, val_predicted, average="macro", zero_division=0)
    val_accuracy = float((val_predicted == val_split.labels).float().mean())

    confusion_figure, ax = plt.subplots(figsize=(4.6, 4))
    normalized = val_confusion / np.maximum(val_confusion.sum(1, keepdims=True), 1)
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=30)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{normalized[i, j]:.2f}\n({val_confusion[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if normalized[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Validation: recall-normalized confusion matrix")
    confusion_figure.colorbar(image, fraction=0.046)
    confusion_figure.tight_layout()
    plt.show()
    print(f"accuracy {val_accuracy:.3f}, macro-F1 {val_macro_f1:.3f}")
    print("recall per class:", {c: round(float(r), 3) for c, r in zip(CLASSES, val_recall)})
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_evaluation
    assert val_confusion.shape == (4, 4) and val_confusion.sum() == len(val_split), "a 4 x 4 matrix of counts"
    assert np.array_equal(val_confusion.sum(1), np.bincount(val_split.labels.numpy(), minlength=4)), "rows are true classes"
    assert len(val_recall) == 4 and 0 <= val_macro_f1 <= 1
    print("evaluation OK")
    ### BEGIN HIDDEN TESTS
    assert np.allclose(val_recall, np.diag(val_confusion) / val_confusion.sum(1)), "recall = diagonal / row sum"
    assert abs(val_macro_f1 - f1_score(val_split.labels, val_predicted, average="macro")) < 1e-9
    ### END HIDDEN TESTS

# %% [markdown]
# ## 5. Grad-CAM
#
# Write `grad_cam(model, images, layer, classes=None)` with hooks: a forward hook on `layer` keeps
# its output A (N x K x h x w) and registers a hook on that tensor that keeps its gradient. Run the
# model, back-propagate the logit of each image's class (`classes`, by default the predicted one),
# weight each channel of A by the mean of its gradient over the positions, sum over the channels,
# apply ReLU, and upsample (bilinear) to the image size. Remove the hook before returning, and
# return the heatmaps N x H x W, each divided by its maximum (all zeros stay zeros), and the classes.

# %% solution id=grad_cam
def grad_cam(model: nn.Module, images: torch.Tensor, layer: nn.Module,
             classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    ### BEGIN SOLUTION
    kept = {}

    def keep(module, inputs, output):
        kept["activations"] = output
        output.register_hook(lambda grad: kept.__setitem__("gradients", grad))

    handle = layer.register_forward_hook(keep)
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(images.detach().clone().requires_grad_(True))
            classes = logits.argmax(1) if classes is None else classes.to(logits.device)
            logits.gather(1, classes.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
    activations, gradients = kept["activations"].detach().float(), kept["gradients"].float()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).cpu(), classes.cpu()
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_grad_cam
    layer = getattr(model, CAM_LAYER)
    cams, cam_classes = grad_cam(model, val_split.images[:4].to(device), layer)
    assert cams.shape == (4, *val_split.images.shape[-2:]), "one heatmap per image, at the image size"
    assert cams.min() >= 0 and cams.max() <= 1 + 1e-6, "heatmaps are non-negative, scaled to at most 1"
    assert not layer._forward_hooks, "remove the hook when done"
    print("Grad-CAM OK")
    ### BEGIN HIDDEN TESTS
    assert torch.equal(cam_classes, val_logits[:4].argmax(1)), "by default, explain the predicted class"
    ### END HIDDEN TESTS

# %% [markdown]
# Show Grad-CAM on two correctly classified and two misclassified validation images (fewer if
# there are not that many), each with its true and predicted class, as the figure `gradcam_figure`.

if __name__ == "__main__":
    # %% solution id=gradcam_figure
    ### BEGIN SOLUTION
    correct = torch.nonzero(val_predicted == val_split.labels).flatten()[:2]
    wrong = torch.nonzero(val_predicted != val_split.labels).flatten()[:2]
    shown = torch.cat([correct, wrong])
    shown_cams, _ = grad_cam(model, val_split.images[shown].to(device), getattr(model, CAM_LAYER))
    gradcam_figure, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 2.9), squeeze=False)
    for ax, index, cam in zip(axes[0], shown.tolist(), shown_cams):
        ax.imshow(val_split.images[index, 0].numpy(), cmap="gray")
        ax.imshow(cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(f"true {CLASSES[val_split.labels[index]]}\npredicted {CLASSES[val_predicted[index]]}", fontsize=8)
        ax.axis("off")
    gradcam_figure.suptitle(f"Grad-CAM on {CAM_LAYER}", fontsize=9)
    gradcam_figure.tight_layout()
    plt.show()
    ### END SOLUTION

# %% [markdown]
# ## 6. Reflections
#
# **Overfitting.** At which epoch does the validation loss stop improving, and what do the
# training and validation losses do after it? Why does early stopping (keeping the weights of
# that epoch) help here?

# %% answer id=reflection_overfitting
# The validation loss falls for the first epochs and stops improving at the epoch that
# train_model returns as best_epoch (printed above, late in the run on the tiny profile and about a
# third of the way through on the atlas); after it the training loss keeps falling while the
# validation loss stays flat or rises again, so the network starts to memorize the training images
# instead of learning the curvature. Early stopping keeps the weights of the epoch with the lowest
# validation loss, so the model we export is the one that generalizes best, and the later epochs
# that only fit noise of the training set cost nothing.

# %% [markdown]
# **Class imbalance.** Which class is rarest, and how does that show in the recall-normalized
# confusion matrix? What did the weighted loss change?

# %% answer id=reflection_imbalance
# Kyphotic is the rarest class, about a tenth of the images, followed by Sigmoid. In the
# recall-normalized confusion matrix the rare classes have the lowest diagonal values: their
# misclassified images go mostly to the neighbouring shapes, Kyphotic to Straight and Sigmoid to
# Lordotic or Straight, because an S-shaped or slightly reversed curve looks like its neighbour.
# The class weights make each class count equally in the loss, which raises the recall of the rare
# classes (and the macro-F1) at the price of a few more false alarms in the frequent ones.

# %% [markdown]
# **Interpretability.** Look at Grad-CAM on two correct and two misclassified images: does the
# network look at the spine? What differs for the misclassified ones?

# %% answer id=reflection_interpretability
# For the correctly classified images the heatmap lies on the column of vertebral bodies and the
# soft tissue right behind it, where the curve bends, so the network looks at the spine rather than
# at the jaw or the background. For the misclassified images the heat is spread out or sits on the
# jaw or the image border, or on only one end of the spine, which fits the errors: an S-shape can
# only be seen over the whole column. Grad-CAM shows where the evidence is, not why, so I would not
# trust a prediction whose heatmap is not on the spine.

if __name__ == "__main__":
    # %% solution id=report
    # Report what you measured; the grader compares it with its own measurement.
    ### BEGIN SOLUTION
    reported = {"val_accuracy": val_accuracy, "val_macro_f1": float(val_macro_f1), "best_epoch": best_epoch,
                "train_seconds": train_seconds, "gradcam_layer": CAM_LAYER,
                **{f"recall_{c}": float(r) for c, r in zip(CLASSES, val_recall)}}
    print(reported)
    ### END SOLUTION

    # %% export
    # Exports the model, the history, the confusion matrix and Grad-CAM heatmaps of the first 32
    # validation images (the grader computes its own on the same layer and compares). Do not edit.
    cam_images = val_split.images[:32]
    cams, cam_classes = grad_cam(model, cam_images.to(device), getattr(model, CAM_LAYER))
    artifacts = export_for_grading(
        model, val_split.images, artifact_dir, history=history, reported=reported,
        figures={"confusion_matrix": confusion_figure, "gradcam": gradcam_figure},
        tensors={"confusion_matrix": torch.as_tensor(val_confusion), "gradcam": cams, "gradcam_class": cam_classes})
    print(f"exported to {artifacts}")
