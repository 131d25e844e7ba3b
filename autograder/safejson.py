"""JSON from files a student wrote: no link followed, regular files only, bounded size and depth.

Python's json parser recurses once per nesting level, so a deeply nested file raises
RecursionError (not a ValueError), and a file just under the recursion limit parses but breaks
whatever walks it next (deepcopy, schema validation). Both are turned into one ValueError here.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MAX_DEPTH = 64   # an honest notebook nests about 10 levels (widget state, vega specs: ~20)


class UnreadableJSON(ValueError):
    pass


def depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion up to limit + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads(text: str | bytes, max_depth: int = MAX_DEPTH):
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnreadableJSON(f"nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise UnreadableJSON(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if depth(value, max_depth) > max_depth:
        raise UnreadableJSON(f"nested more than {max_depth} levels deep")
    return value


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The content of path if it is a regular file reached without following a final link and
    no larger than max_bytes; OSError or UnreadableJSON otherwise. O_NONBLOCK: a FIFO never blocks."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableJSON(f"{Path(path).name} is not a regular file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableJSON(f"{Path(path).name} is larger than {max_bytes // 2**20} MiB")
    return data


def read_json_file(path: Path, max_bytes: int, max_depth: int = MAX_DEPTH):
    return loads(read_bytes(path, max_bytes), max_depth)
