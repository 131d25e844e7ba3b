"""The names of what a notebook exports for grading: shared by the students' helper (which writes
them), the evaluator and the self-check (which read them). No imports, so reading these names
costs the client nothing (the helper itself imports torch)."""

MODEL_FILE = "model.pt2"
HISTORY_FILE = "history.json"
REPORTED_FILE = "reported.json"
FIGURES_DIR = "figures"
TENSORS_FILE = "tensors.pt"
EXPERIMENTS_FILE = "experiments.json"
