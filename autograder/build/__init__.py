"""build: reference/<a>.py + rubrics/<a>.yaml -> nbgrader source notebook assignments/<a>/<a>.ipynb."""

from .notebook import BuildError, build_notebook, build_assignment, stale_assignments

__all__ = ["BuildError", "build_notebook", "build_assignment", "stale_assignments"]
