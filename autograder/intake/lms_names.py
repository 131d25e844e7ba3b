"""The names LMS bulk downloads give to student uploads, and loose matching of names.

Canvas ("Download Submissions", lib/content_zipper.rb) names each file
    <sortablename>[_LATE]_<userid>_<attachmentid>_<original file name>
where <sortablename> is 'Doe, Jane' lowercased with punctuation dropped ('doejane'), and under
anonymous grading the name is absent and the id is 'anon_<anonymous id>' ('LATE_anon_x1Yz2_...').
A second upload of the same file name gets a '-1' suffix ('hw1-1.ipynb').

Moodle ("Download all submissions", mod/assign) puts each student's files in a folder
    <Full Name>_<participantid>_assignsubmission_file_/<original file name>
or, with "download submissions in folders" off, prefixes the file name with that folder name.
The participant id comes from Moodle's per-assignment user mapping.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class LmsEntry:
    lms: str  # "canvas" or "moodle"
    lms_id: str  # Canvas user id (or anon_<id>), Moodle participant id
    name: str  # the name as the LMS wrote it ('doejane', 'Jane Doe'); '' when anonymous
    filename: str  # the student's own file name
    late: bool = False  # Canvas marks late submissions
    upload_id: int = 0  # Canvas attachment id: grows with each upload, so it orders equal times


_CANVAS = re.compile(
    r"""^(?:(?P<name>.+?)_)??
    (?P<late>late_)?
    (?P<uid>\d+|anon_[0-9a-z]+)
    _(?P<upload>\d+)
    _(?P<filename>.+)$""",
    re.IGNORECASE | re.VERBOSE,
)

_MOODLE = re.compile(
    r"""(?:^|/)(?P<name>[^/]+?)_(?P<pid>\d+)_assignsubmission_(?P<plugin>[a-z]+)_
    (?:/(?P<path>.+)|(?P<flat>[^/]+))$""",
    re.VERBOSE,
)


def parse_lms_entry(path: str) -> LmsEntry | None:
    """Who submitted a file of an LMS zip, from its path in the zip; None if neither naming fits."""
    return _parse_moodle(path) or _parse_canvas(path)


def _parse_moodle(path: str) -> LmsEntry | None:
    m = _MOODLE.search(path)
    if not m:
        return None
    filename = PurePosixPath(m["path"] or m["flat"]).name
    return LmsEntry("moodle", m["pid"], m["name"].strip(), filename)


def _parse_canvas(path: str) -> LmsEntry | None:
    # Canvas zips are flat; take the base name in case the zip was re-packed inside a folder.
    m = _CANVAS.match(PurePosixPath(path).name)
    if not m:
        return None
    name, late, upload_id = m["name"] or "", bool(m["late"]), int(m["upload"])
    return LmsEntry("canvas", m["uid"], name, m["filename"], late=late, upload_id=upload_id)


def _words(text: str) -> list[str]:
    # Compare file names without case, accents or punctuation: 'Müller' ~ 'muller'.
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", plain)


def _name_words(text: str) -> list[str]:
    """A person's name as words, without case, accents or punctuation, but with no compatibility
    folding: 'Ｊａｎｅ' (fullwidth) is not 'Jane', and Cyrillic 'а' is not Latin 'a'. Names
    decide whose work an upload is, so look-alikes must not match."""
    decomposed = unicodedata.normalize("NFD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.findall(r"[^\W_]+", plain)


def name_keys(name: str) -> set[str]:
    """Keys under which a person's name can match an LMS name, in any word order.

    Canvas writes 'Doe, Jane' as 'doejane', Moodle writes 'Jane Doe'; a roster may say either.
    """
    words = _name_words(name)
    return {"".join(words[i:] + words[:i]) for i in range(len(words))} if words else set()


def looks_like_assignment(filename: str, assignment: str) -> bool:
    """Whether a file name plausibly is the assignment's notebook.

    Some consecutive words of the name must spell the assignment id: for 'cnn_lab1' this accepts
    'cnn_lab1.ipynb', 'CNN-Lab1-1.ipynb' (Canvas re-upload), 'cnnlab1 (2).ipynb', 'doe_cnn_lab1.ipynb',
    and refuses 'cnn_lab10.ipynb' or 'Untitled.ipynb'.
    """
    want = "".join(_words(assignment))
    stem = PurePosixPath(filename).name.rsplit(".", 1)[0]
    words = _words(stem)
    runs = ("".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))
    return want in runs
