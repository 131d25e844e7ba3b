"""Training throughput of each reference loop against a straightforward baseline loop for the
same model and data (DataLoader, batch 64, fp32, a loss.item() per batch, as the course's first
drafts did), measured side by side in one run.

    .venv/bin/python benchmarks/reference_speed.py [--profile tiny] [--only NAME ...] [--repeat 5]

After one untimed warm-up epoch of each, every round times the reference and the baseline back to
back (alternating which goes first), so both see the same load on a shared machine. Prints the
median images/s of both with their range over the rounds, and the median of the per-round ratios
with its range; the last line is JSON {assignment: median ratio}.

Both run in the environment of the grader's notebook kernels (TORCH_CPU_ENV in
autograder/grading/cpu_env.py: passive OpenMP waiting, glibc keeping freed buffers); the script
restarts itself with those variables when they are missing. Set any of them yourself to measure
otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from autograder.grading.cpu_env import TORCH_CPU_ENV  # noqa: E402

if any(name not in os.environ for name in TORCH_CPU_ENV):   # glibc and OpenMP read them at start-up
    os.execve(sys.executable, [sys.executable, *sys.argv], {**TORCH_CPU_ENV, **os.environ})

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

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


def measure(case: dict, device, repeat: int) -> dict:
    epochs, split = case["epochs"], case["train"]
    make_optimizer = case.get("optimizer") or (lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9))
    torch.manual_seed(0)
    runs = {
        "reference": lambda: case["reference_fit"](case["make_model"](), split, epochs),
        "baseline": lambda: baseline_fit(case["make_model"](), split, epochs, case["loss"], make_optimizer, device),
    }
    # warm-up outside the clock (allocator, kernels, lazy init), one epoch each
    case["reference_fit"](case["make_model"](), split, 1)
    baseline_fit(case["make_model"](), split, 1, case["loss"], make_optimizer, device)
    seconds = {"reference": [], "baseline": []}
    for round_ in range(repeat):
        for name in (("reference", "baseline") if round_ % 2 == 0 else ("baseline", "reference")):
            seconds[name].append(timed(runs[name]))
    images = len(split) * epochs
    ips = {name: [images / s for s in values] for name, values in seconds.items()}
    ratios = [b / r for r, b in zip(seconds["reference"], seconds["baseline"])]
    return {"reference_ips": ips["reference"], "baseline_ips": ips["baseline"], "ratios": ratios}


def spread(values: list[float], fmt: str) -> str:
    """median (min-max)"""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds of reference and baseline")
    args = parser.parse_args()
    device = select_device("auto")
    ratios = {}
    print(f"device {device}, {torch.get_num_threads()} CPU threads, "
          + ", ".join(f"{name}={os.environ[name]}" for name in TORCH_CPU_ENV) + ", "
          f"profile {args.profile}, {args.repeat} rounds; median (min-max)")
    print(f"{'assignment':<20} {'reference img/s':>20} {'baseline img/s':>20} {'ratio':>20}")
    for module in sorted(m.name for m in pkgutil.iter_modules(speed_cases.__path__)):
        if args.only and module not in args.only:
            continue
        case = importlib.import_module(f"speed_cases.{module}").case(args.profile)
        figures = measure(case, device, args.repeat)
        ratios[case["name"]] = round(statistics.median(figures["ratios"]), 2)
        print(f"{case['name']:<20} {spread(figures['reference_ips'], '.0f'):>20} "
              f"{spread(figures['baseline_ips'], '.0f'):>20} {spread(figures['ratios'], '.2f'):>20}", flush=True)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
