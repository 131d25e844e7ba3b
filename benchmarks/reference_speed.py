"""Training throughput of each reference loop against a straightforward baseline loop for the
same model and data (DataLoader, batch 64, fp32, a loss.item() per batch, as the course's first
drafts did), measured side by side in one run.

    .venv/bin/python benchmarks/reference_speed.py [--profile tiny] [--only NAME ...]

Prints images/s of both and their ratio per assignment; the last line is JSON {assignment: ratio}.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import speed_cases  # noqa: E402

from autograder.student import select_device  # noqa: E402


def baseline_fit(model, split, epochs: int, loss_fn, make_optimizer, device) -> None:
    model = model.to(device)
    optimizer = make_optimizer(model.parameters())
    loader = DataLoader(TensorDataset(split.images, split.labels), batch_size=64, shuffle=True)
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            loss.item()  # the per-batch sync of a typical first draft (logging the loss)


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(case: dict, device) -> dict:
    epochs, split = case["epochs"], case["train"]
    make_optimizer = case.get("optimizer") or (lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9))
    torch.manual_seed(0)
    # warm-up outside the clock (allocator, kernels, lazy init), one epoch each
    case["reference_fit"](case["make_model"](), split, 1)
    baseline_fit(case["make_model"](), split, 1, case["loss"], make_optimizer, device)
    ref_s = timed(lambda: case["reference_fit"](case["make_model"](), split, epochs))
    base_s = timed(lambda: baseline_fit(case["make_model"](), split, epochs, case["loss"], make_optimizer, device))
    images = len(split) * epochs
    return {"reference_ips": images / ref_s, "baseline_ips": images / base_s, "ratio": base_s / ref_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    device = select_device("auto")
    ratios = {}
    print(f"device {device}, {torch.get_num_threads()} CPU threads, profile {args.profile}")
    print(f"{'assignment':<20} {'reference img/s':>16} {'baseline img/s':>16} {'ratio':>7}")
    for module in sorted(m.name for m in pkgutil.iter_modules(speed_cases.__path__)):
        if args.only and module not in args.only:
            continue
        case = importlib.import_module(f"speed_cases.{module}").case(args.profile)
        figures = measure(case, device)
        ratios[case["name"]] = round(figures["ratio"], 2)
        print(f"{case['name']:<20} {figures['reference_ips']:16.0f} {figures['baseline_ips']:16.0f} {figures['ratio']:6.2f}x")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
