"""Course kit and grading engine for deep-learning courses.

Stages (see docs/architecture.md): build -> release -> verify -> grade
(sanitize, execute, evaluate, score, record). Each stage is a small function
from plain data to plain data; persistence happens once, in `record`.
"""

import sys

__version__ = "0.1.0"

# jsonschema (behind nbformat and the rubric schema) imports the optional rfc3987_syntax when it is
# installed (jupyter-events pulls it in), and that module compiles 39 lark grammars at import:
# about 1.3 s in every process that grades (the notebook runner, the evaluator, each worker, the
# CLI). No schema here uses the "iri" formats it checks; jsonschema skips them when it is absent.
sys.modules.setdefault("rfc3987_syntax", None)
