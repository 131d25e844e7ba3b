"""Parse a reference solution written in the percent format into cell specs.

A reference module is plain, importable Python. Cells start with a header comment:

    # %% [markdown]                       instructions (lines are `# text`)
    # %% <role> [id=<grade id>]           role: locked | parameters | solution | test | train | answer | export
    # %%                                  a plain code cell

Code that must run only in the notebook (or as a script), never on import, sits under
`if __name__ == "__main__":`; that line is structure, not content, and cells below it are
dedented. In a Jupyter kernel `__name__` is "__main__", so the script and the notebook run
the same code in the same order.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

ROLES = ("markdown", "code", "locked", "parameters", "solution", "test", "train", "answer", "export")
_HEADER = re.compile(r"^\s*# %%(?P<rest>.*)$")
_MAIN_GUARD = re.compile(r"""^if __name__ == ["']__main__["']:\s*$""")


class ReferenceFormatError(ValueError):
    pass


@dataclass(frozen=True)
class CellSpec:
    role: str
    source: str
    grade_id: str | None
    line: int            # 1-based line of the header, for error messages


def _parse_header(rest: str, where: str) -> tuple[str, str | None]:
    words = rest.split()
    if not words:
        return "code", None
    if words[0] == "[markdown]":
        return "markdown", None
    role, grade_id = words[0], None
    if role not in ROLES:
        raise ReferenceFormatError(f"{where}: unknown cell role {role!r}; use one of {', '.join(ROLES)}")
    for word in words[1:]:
        key, _, value = word.partition("=")
        if key != "id" or not value:
            raise ReferenceFormatError(f"{where}: unexpected {word!r} in cell header (only id=<name>)")
        grade_id = value
    defaults = {"parameters": "parameters", "train": "train", "export": "export"}
    grade_id = grade_id or defaults.get(role)
    if role in ("locked", "solution", "test", "answer") and not grade_id:
        raise ReferenceFormatError(f"{where}: a {role} cell needs id=<name>")
    return role, grade_id


def _uncomment(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped == "#":
            out.append("")
        elif stripped.startswith("# "):
            out.append(stripped[2:])
        elif stripped:
            out.append(stripped)  # stray code in a markdown cell is kept verbatim
        else:
            out.append("")
    return out


def _finish(role: str, grade_id: str | None, body: list[str], line: int) -> CellSpec:
    body = [b for b in body if not _MAIN_GUARD.match(b)]
    text = textwrap.dedent("\n".join(body)).strip("\n")
    if role in ("markdown", "answer"):
        text = "\n".join(_uncomment(text.splitlines())).strip("\n")
    return CellSpec(role, text, grade_id, line)


def parse_reference(source: str, name: str = "<reference>") -> list[CellSpec]:
    cells: list[CellSpec] = []
    current: tuple[str, str | None, int] | None = None
    body: list[str] = []
    for number, line in enumerate(source.splitlines(), start=1):
        match = _HEADER.match(line)
        if match:
            if current:
                cells.append(_finish(*current[:2], body, current[2]))
            role, grade_id = _parse_header(match["rest"], f"{name}:{number}")
            current, body = (role, grade_id, number), []
        elif current:
            body.append(line)
        elif line.strip() and not line.startswith("#"):
            raise ReferenceFormatError(f"{name}:{number}: code before the first '# %%' cell header")
    if current:
        cells.append(_finish(*current[:2], body, current[2]))
    cells = [c for c in cells if c.source or c.role == "answer"]
    ids = [c.grade_id for c in cells if c.grade_id]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ReferenceFormatError(f"{name}: cell ids used twice: {', '.join(dupes)}")
    return cells
