"""What an evaluator check may use: the exported artifacts, the hidden data, an output folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


@dataclass
class EvalContext:
    artifacts: Path            # written by the student's export cell (untrusted content)
    out: Path                  # the evaluator's own output folder (figures)
    dataset: str
    profile: str
    hidden_root: Path | None
    data_root: Path | None
    secret: int                # the course secret: seeds hidden stand-ins

    def program(self, filename: str = "model.pt2"):
        """A torch.export program from the artifacts (no student Python runs on load)."""
        import torch

        path = self.artifacts / filename
        if not path.is_file():
            raise FileNotFoundError(f"no {filename} among the exported artifacts")
        return torch.export.load(str(path))

    def json(self, filename: str) -> dict:
        path = self.artifacts / filename
        if not path.is_file():
            raise FileNotFoundError(f"no {filename} among the exported artifacts")
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{filename} is not a JSON object")
        return data

    def tensors(self, filename: str) -> dict:
        """Tensors saved with torch.save, loaded with weights_only=True (no pickle code runs)."""
        import torch

        path = self.artifacts / filename
        if not path.is_file():
            raise FileNotFoundError(f"no {filename} among the exported artifacts")
        return torch.load(path, map_location="cpu", weights_only=True)

    @cached_property
    def test_split(self):
        from ...datasets.hidden import load_test_split

        return load_test_split(self.dataset, self.profile, self.hidden_root, self.secret)

    def figure(self, name: str) -> Path | None:
        """A figure the student exported (artifacts/figures/<name>.png), if any."""
        path = self.artifacts / "figures" / f"{name}.png"
        return path if path.is_file() else None
