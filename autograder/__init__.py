"""Course kit and grading engine for deep-learning courses.

Stages (see docs/architecture.md): build -> release -> verify -> grade
(sanitize, execute, evaluate, score, record). Each stage is a small function
from plain data to plain data; persistence happens once, in `record`.
"""

__version__ = "0.1.0"
