"""One data registry for the reference, the students and the evaluator.

Students call `load_split(name, "train" | "val", profile, data_root)`. The test split
is served only by `autograder.datasets.hidden`, which the trusted evaluator imports;
on the `full` profile its files live under the hidden data root, outside the sandbox.
"""

from .registry import DatasetMissing, Split, available, load_split

__all__ = ["DatasetMissing", "Split", "available", "load_split"]
