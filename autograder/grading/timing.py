"""Reference training time per (machine, assignment, profile), measured once and cached.

Timing is scored as a ratio against the reference solution on the same runner and profile,
so a slow GPU or a busy CPU does not penalize students; the cache key names the machine.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


def machine_key(device_name: str = "cpu") -> str:
    return f"{platform.node()}-{platform.machine()}-{device_name}".replace("/", "_").replace(" ", "_")


def cluster_key(scheduler: str) -> str:
    """The timing key of a cluster of runners that share no folder with the instructor: the
    reference is measured on one of its runners (keep the runners of one cluster alike)."""
    return "cluster-" + "".join(c if c.isalnum() or c in "-." else "_" for c in scheduler)


def _cache_file(cache_dir: Path, assignment: str, profile: str, machine: str) -> Path:
    return Path(cache_dir) / "timing" / f"{assignment}-{profile}-{machine}.json"


def cached_reference_seconds(cache_dir: Path, assignment: str, profile: str, machine: str) -> float | None:
    path = _cache_file(cache_dir, assignment, profile, machine)
    try:
        return float(json.loads(path.read_text())["train_seconds"])
    except (OSError, ValueError, KeyError):
        return None


def store_reference_seconds(cache_dir: Path, assignment: str, profile: str, machine: str, seconds: float) -> Path:
    path = _cache_file(cache_dir, assignment, profile, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train_seconds": seconds, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return path
