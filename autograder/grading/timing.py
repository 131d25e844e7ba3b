"""Reference training time per (machine, assignment, profile), measured once and cached.

Timing is scored as a ratio against the reference solution on the same runner and profile,
so a slow GPU or a busy CPU does not penalize students; the cache key names the machine.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

SERVICE_KEYS = ("p50_ms", "p95_ms")


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


def cached_reference_service(cache_dir: Path, assignment: str, profile: str, machine: str) -> dict | None:
    """The reference service's latency measured with the same reference run ({"p50_ms", "p95_ms"})."""
    path = _cache_file(cache_dir, assignment, profile, machine)
    try:
        service = json.loads(path.read_text())["service"]
        return {k: float(service[k]) for k in SERVICE_KEYS}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_reference_seconds(cache_dir: Path, assignment: str, profile: str, machine: str, seconds: float,
                            service: dict | None = None) -> Path:
    """The reference run's training time and, for an assignment graded as a service, its
    service's latency (the same run measured both: one reference run per runner)."""
    path = _cache_file(cache_dir, assignment, profile, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"train_seconds": seconds, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if service:
        data["service"] = {k: float(service[k]) for k in SERVICE_KEYS}
    path.write_text(json.dumps(data))
    return path


def service_latency(evaluation: dict, part_id: str | None) -> dict | None:
    """{"p50_ms", "p95_ms"} that a run's latency check measured (in its evaluation), if any."""
    details = ((evaluation or {}).get("checks", {}).get(part_id) or {}).get("details") or {}
    try:
        return {k: float(details[k]) for k in SERVICE_KEYS}
    except (KeyError, TypeError, ValueError):
        return None
