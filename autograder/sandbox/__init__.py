"""Sandbox for untrusted student code: bubblewrap isolation plus resource limits and a watchdog."""

from .bwrap import SandboxSpec, SandboxUnavailable, bwrap_available, run_sandboxed, sandbox_argv
from .limits import Limits, RunOutcome, run_limited

__all__ = [
    "Limits",
    "RunOutcome",
    "SandboxSpec",
    "SandboxUnavailable",
    "bwrap_available",
    "run_limited",
    "run_sandboxed",
    "sandbox_argv",
]
