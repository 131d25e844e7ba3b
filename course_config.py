"""The course: id, assignments, profiles, data roots, runner and sandbox settings.

Plain data first, so the autograder imports it as a module. When nbgrader loads
this file as its config (see nbgrader_config.py), `get_config()` exists and the
same values configure nbgrader, so `nbgrader ...` commands work on this course.
"""

import os
from pathlib import Path

COURSE_ID = "cnn101"

# In teaching order. Each has reference/<name>.py and rubrics/<name>.yaml.
ASSIGNMENTS = ["lenet5_mnist", "vgg16_transfer", "alexnet_filters", "googlenet_cifar10", "resnet50_csxa", "inquiry_csxa", "cnn_theory",
               "pneumonia_service", "mammo_efficiency", "spine_architectures"]

# Where real datasets and pretrained weights are staged for the `full` profile.
DATA_ROOT = Path(os.environ.get("AUTOGRADER_DATA_ROOT", "~/course-data")).expanduser()
# Held-out test splits: read by the trusted evaluator only, never mounted in the sandbox.
HIDDEN_DATA_ROOT = Path(os.environ.get("AUTOGRADER_HIDDEN_DATA_ROOT", "~/course-hidden-data")).expanduser()

# `tiny`: any CPU, seconds per assignment, bundled or generated data.
# `full`: the real course on a GPU runner with the real datasets under DATA_ROOT.
PROFILES = {
    "tiny": {
        "device": "auto",
        "notebook_timeout_s": 300,   # whole notebook, wall clock, enforced by the executor
        "cell_timeout_s": 240,       # papermill's per-cell limit
        "memory_gb": 6,
    },
    "full": {
        "device": "auto",
        "notebook_timeout_s": 4 * 3600,
        "cell_timeout_s": 3 * 3600,
        "memory_gb": 20,
    },
}
DEFAULT_PROFILE = "tiny"

# Due dates (UTC unless a zone is given). A submission's time (from collect) past its due date is
# late: shown in `status`, the class report and the feedback, and stored in the gradebook, where
# nbgrader's late penalty applies: LATE_PENALTY is its LateSubmissionPlugin.penalty_method
# ("none": only marked late; "zero": a late submission scores 0).
DUE_DATES = {}   # e.g. {"lenet5_mnist": "2026-10-12 23:59:00 UTC"}
LATE_PENALTY = "none"

# Folders, relative to the course root (nbgrader's layout for the runtime ones).
SOURCE_DIR = "assignments"
RELEASE_DIR = "release"
GRADEBOOK_URL = "sqlite:///gradebook.db"

# Grading runners: None starts an embedded Dask LocalCluster; "tcp://host:8786" uses a cluster.
SCHEDULER_ADDRESS = os.environ.get("AUTOGRADER_SCHEDULER") or None
# Untrusted code always runs under bubblewrap; grading refuses to run without it unless
# `--unsandboxed` is given on the command line (never a setting that could be left on).

try:
    c = get_config()  # noqa: F821 - defined only when nbgrader/traitlets loads this file
except NameError:
    c = None

if c is not None:
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = SOURCE_DIR
    c.CourseDirectory.release_directory = RELEASE_DIR
    c.CourseDirectory.db_url = GRADEBOOK_URL
    c.Execute.timeout = PROFILES[DEFAULT_PROFILE]["cell_timeout_s"]
    c.LateSubmissionPlugin.penalty_method = LATE_PENALTY
    # nbgrader's generate_feedback must not publish grader internals (autograder/nbgrader_config.py)
    from autograder.nbgrader_config import student_safe_feedback
    student_safe_feedback(c)
    # Warnings on stderr must not zero a test cell (nbgrader >= 0.9.4).
    c.IgnorePattern.pattern = r".*(Warning|warn)\b.*"
