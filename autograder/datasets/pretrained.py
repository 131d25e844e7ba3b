"""Pretrained backbones for the transfer-learning and visualization assignments.

`full`: torchvision's ImageNet weights, read from a file staged beforehand under the torchvision
file name (nothing is downloaded). `tiny`: the same architecture with random weights drawn with a
fixed, public seed, so that the notebook and the evaluator build identical "pretrained" weights
(the evaluator compares exported weights with them, e.g. to see that a backbone stayed frozen).

Where a weights file is looked for, in order:
  1. `<data_root>/torch/hub/checkpoints/<file>`: a torch cache under the course data root (as if
     TORCH_HOME=<data_root>/torch). This is the place for graded runs: the sandbox mounts the data
     root (read-only) and nothing else.
  2. `$TORCH_HOME/hub/checkpoints/<file>` (torch's own cache, `~/.cache/torch` by default), for
     unsandboxed use on a machine where torchvision once downloaded the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .registry import DatasetMissing

# torchvision's file names (the last part of `<Arch>_Weights.IMAGENET1K_V1.url`).
WEIGHT_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
}
# The tiny profile's stand-in for ImageNet weights: public, fixed, the same for everyone.
TINY_SEED = 1234


class WeightsMissing(DatasetMissing):
    """A pretrained weights file is not staged where the course expects it."""


def weight_dirs(data_root: str | Path | None = None) -> list[Path]:
    dirs = [Path(data_root).expanduser() / "torch" / "hub" / "checkpoints"] if data_root else []
    return dirs + [Path(torch.hub.get_dir()) / "checkpoints"]


def weights_path(arch: str, data_root: str | Path | None = None) -> Path:
    """The staged ImageNet weights file of `arch`, or a WeightsMissing saying what goes where."""
    filename = WEIGHT_FILES[arch]
    dirs = weight_dirs(data_root)
    for folder in dirs:
        if (folder / filename).is_file():
            return folder / filename
    where = "\n".join(f"  {d / filename}" for d in dirs)
    root_hint = (f"{Path(data_root).expanduser()}/torch/hub/checkpoints/" if data_root
                 else "<data root>/torch/hub/checkpoints/ (pass data_root; the course sets it from AUTOGRADER_DATA_ROOT)")
    raise WeightsMissing(
        f"the ImageNet weights of {arch} ({filename}) are not staged; looked for:\n{where}\n"
        f"Put torchvision's file {filename} into {root_hint}: graded notebooks see only the data root. "
        f"On a machine with internet, `TORCH_HOME=<data root>/torch python -c \"import torchvision; "
        f"torchvision.models.{arch}(weights='IMAGENET1K_V1')\"` writes it there. Nothing is downloaded at run time.")


def pretrained_model(arch: str, profile: str = "tiny", data_root: str | Path | None = None) -> torch.nn.Module:
    """torchvision's `arch` ("vgg16", "alexnet") with ImageNet weights (full) or seeded random
    weights (tiny), on the CPU, in eval mode. The global random state is left untouched."""
    import torchvision

    if arch not in WEIGHT_FILES:
        raise KeyError(f"no pretrained {arch!r}; known: {sorted(WEIGHT_FILES)}")
    build = getattr(torchvision.models, arch)
    if profile == "tiny":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            return build(weights=None).eval()
    path = weights_path(arch, data_root)
    with torch.device("meta"):   # no random init of 100M+ parameters that are overwritten next
        model = build(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, assign=True)
    return model.eval()
