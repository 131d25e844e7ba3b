"""The data registry: tiny stand-in from scikit-learn's digits, real MNIST from IDX files."""

import struct

import numpy as np
import pytest
import torch

from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.hidden import course_secret, load_test_split


def test_tiny_splits_are_lenet_sized_and_disjoint(tmp_path):
    train, val = load_split("mnist", "train"), load_split("mnist", "val")
    test = load_test_split("mnist", "tiny", None, course_secret(tmp_path))
    assert train.images.shape[1:] == (1, 32, 32) and train.images.dtype == torch.float32
    assert len(train) + len(val) + len(test) == 1797
    assert set(train.labels.tolist()) == set(range(10))
    # the hidden split is drawn with the course secret: a different secret, different pixels
    other = load_test_split("mnist", "tiny", None, course_secret(tmp_path) + 1)
    assert not torch.equal(test.images, other.images)
    assert torch.equal(test.labels, other.labels)


def test_students_cannot_ask_for_the_test_split():
    with pytest.raises(PermissionError, match="held out"):
        load_split("mnist", "test")


def test_full_mnist_missing_names_files_and_folder(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_split("mnist", "train", "full", tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "downloaded" in message


def _write_idx(path, array):
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_full_mnist_reads_idx_files_with_torchvision(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 255, (5100, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", rng.integers(0, 10, (5100,)))
    train = load_split("mnist", "train", "full", tmp_path)
    val = load_split("mnist", "val", "full", tmp_path)
    assert len(train) == 100 and len(val) == 5000
    assert train.images.shape == (100, 1, 32, 32)
    with pytest.raises(DatasetMissing, match="t10k-images"):  # the test files live elsewhere
        load_test_split("mnist", "full", tmp_path, 0)
