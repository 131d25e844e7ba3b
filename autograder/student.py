"""Helpers that student notebooks import: device selection and the export for grading.

The export is the contract between the student's kernel and the trusted evaluator:
a `torch.export` program (loads without running student Python, never a pickle),
the training history as JSON, the student's self-reported metrics, and figures.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from .grading.cpu_env import GPU_SHARE_ENV
from .export_names import (EXPERIMENTS_FILE, FIGURES_DIR, HISTORY_FILE, MODEL_FILE,  # noqa: F401 - re-exported
                           REPORTED_FILE, TENSORS_FILE)


def select_device(preferred: str = "auto") -> torch.device:
    """`auto` picks CUDA when a GPU is visible, else the CPU. Never assume a GPU. When the grader
    runs several notebooks on one GPU, this notebook keeps to its share of the GPU's memory."""
    if preferred == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but no GPU is visible; use device='auto' or 'cpu'")
    share = os.environ.get(GPU_SHARE_ENV)
    if device.type == "cuda" and share:
        torch.cuda.set_per_process_memory_fraction(float(share), device)
    return device


def _export_program(module: torch.nn.Module, example: torch.Tensor, path: Path, dynamic_size: bool = False) -> None:
    """torch.export with a dynamic batch dimension: loadable without the notebook's Python.
    With `dynamic_size`, height and width are dynamic too (Dim.AUTO: a model that only works at
    one size is exported at that size, and the grader sees it fail at another).

    Weights trained channels-last are strided views of their storage, which torch.export.save
    stores with a warning per tensor; the module is converted to the default layout first (in
    place, like the move to the CPU; the outputs are the same)."""
    module = module.to(memory_format=torch.contiguous_format)
    example = example.contiguous().clone()   # its own storage: a slice would save the whole batch it views
    batch = torch.export.Dim("batch", min=1, max=65536)
    dims = {0: batch, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO} if dynamic_size else {0: batch}
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=(dims,))
    torch.export.save(program, path)


def _finite(values):
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def export_for_grading(model: torch.nn.Module, example_input: torch.Tensor, artifact_dir: str | Path,
                       history: dict | None = None, reported: dict | None = None,
                       figures: dict | None = None, tensors: dict | None = None,
                       programs: dict | None = None, experiments: dict | None = None,
                       dynamic_size: bool = False) -> Path:
    """Write what the grader evaluates into `artifact_dir` and return that folder.

    history:  {"train_loss": [...], "val_accuracy": [...], ...} one value per epoch.
    reported: the metrics the notebook claims, e.g. {"val_accuracy": 0.97, "train_seconds": 3.1}.
    figures:  {"training_curve": matplotlib Figure, ...} saved as PNG.
    tensors:  {"filters": tensor, ...} saved to tensors.pt (the evaluator loads it weights-only).
    programs: {"feature_maps": (module, example_input), ...} more torch.export programs, <name>.pt2.
    experiments: the inquiry loop's log {"baseline": {...}, "variant": {...}, "hypothesis": "...",
              "runs": [{"config": "baseline", "seed": 0, "metrics": {"macro_f1": ...}}, ...]}.
    dynamic_size: export every program with dynamic height and width as well as batch.
    """
    out = Path(artifact_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    example = example_input[:2].detach().to("cpu").float().contiguous()
    _export_program(model, example, out / MODEL_FILE, dynamic_size)
    for name, (module, module_input) in (programs or {}).items():
        module.eval()   # not chained: on a PT2E-quantized module (torchao) eval() returns None
        _export_program(module.to("cpu"), module_input[:2].detach().to("cpu").float().contiguous(),
                        out / f"{name}.pt2", dynamic_size)
    if tensors:
        torch.save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, out / TENSORS_FILE)
    history = {key: _finite(values) for key, values in (history or {}).items()}
    (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    (out / REPORTED_FILE).write_text(json.dumps(reported or {}, indent=1, default=float))
    if experiments is not None:
        (out / EXPERIMENTS_FILE).write_text(json.dumps(experiments, indent=1, default=float))
    if figures:
        (out / FIGURES_DIR).mkdir(exist_ok=True)
        for name, fig in figures.items():
            fig.savefig(out / FIGURES_DIR / f"{name}.png", dpi=80, bbox_inches="tight")
    return out


def plot_history(history: dict, title: str = "Training curve"):
    """One figure: losses on the left axis, accuracies on the right, per epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax2 = ax.twinx()
    for key, values in history.items():
        epochs = range(1, len(values) + 1)
        target = ax if "loss" in key else ax2
        target.plot(epochs, values, marker="o", label=key, linestyle="--" if "loss" in key else "-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2.set_ylabel("accuracy")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="center right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
