"""How a written answer cell is read: the same for suggestions and for calibration.

Markdown wraps a sentence over several lines; the scorer reads sentences, so wrapped lines are
joined. List items, indented or fenced code and lines ending in ':' keep their own line: each
is one statement, and joining them would merge pseudo-code or a list into one long sentence.
nbgrader's "YOUR ANSWER HERE" left above (or below) an answer is not part of it.
"""

from __future__ import annotations

import re

__all__ = ["answer_text", "without_placeholder"]

_PLACEHOLDER_LINE = re.compile(r"^[\s*_#>]*your answer here[\s*_.]*$", re.I)
_LIST_ITEM = re.compile(r"^\s*([-*+•·]|\d+[.)]|[a-z][.)])\s")
_INDENTED = re.compile(r"^(\t| {4})")
_FENCE = re.compile(r"^\s*(```|~~~)")


def without_placeholder(source: str) -> str:
    """The cell text without nbgrader's placeholder lines, stripped ("" if nothing else)."""
    lines = (source or "").replace("\r\n", "\n").split("\n")
    return "\n".join(ln for ln in lines if not _PLACEHOLDER_LINE.match(ln)).strip()


def answer_text(source: str) -> str:
    """The answer as the scorer reads it (idempotent: reading a read answer changes nothing)."""
    lines = [ln.rstrip() for ln in (source or "").replace("\r\n", "\n").split("\n")]
    lines = [ln for ln in lines if not _PLACEHOLDER_LINE.match(ln)]
    out: list[str] = []
    in_fence = False
    joinable = False  # may the next line continue the last one?
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line.strip())
            joinable = False
            continue
        if not line.strip():
            out.append("")
            joinable = False
            continue
        keep = in_fence or _LIST_ITEM.match(line) or _INDENTED.match(line)
        if joinable and not keep:
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.rstrip() if keep else line.strip())
        joinable = not in_fence and not _INDENTED.match(line) and not line.rstrip().endswith(":")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
