"""Submission times: nbgrader's timestamp.txt format, and the dates inside zip archives."""

from __future__ import annotations

import struct
import zipfile
from datetime import datetime, timezone

import dateutil.parser
import dateutil.tz

# nbgrader's default Exchange.timestamp_format, written with the UTC timezone.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"

_ZIP_EXTENDED_TIMESTAMP = 0x5455  # the "UT" extra field: Unix mtime, in UTC


def format_timestamp(when: datetime) -> str:
    """Text for timestamp.txt, as nbgrader's exchange writes it: '2024-05-01 14:03:22.123456 UTC'."""
    return when.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def submitted_at(course, student: str, assignment: str) -> datetime | None:
    """When the student submitted (their folder's timestamp.txt), or None when unknown."""
    try:
        return parse_timestamp((course.submitted_dir / student / assignment / "timestamp.txt").read_text())
    except (OSError, ValueError):
        return None


def parse_timestamp(text: str) -> datetime:
    """Read a timestamp as nbgrader does (nbgrader.utils.parse_utc), as an aware UTC datetime.

    Like nbgrader, a time without a (known) zone is taken as UTC. Raises ValueError.
    Reimplemented rather than imported: importing nbgrader costs seconds.
    """
    try:
        parsed = dateutil.parser.parse(text.strip(), tzinfos=_zone)
    except OverflowError as err:
        raise ValueError(f"timestamp out of range: {text!r}") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _zone(name: str | None, offset: int | None):
    # nbgrader writes zone abbreviations ('UTC', 'CET'); dateutil needs help resolving them.
    if name:
        return dateutil.tz.gettz(name)
    return dateutil.tz.tzoffset(None, offset) if offset is not None else None


def zip_entry_time(info: zipfile.ZipInfo) -> datetime:
    """When a zip entry was last modified, as an aware UTC datetime.

    The standard header only holds a DOS date in the zipping machine's local time (no zone),
    so the UTC mtime of the extended-timestamp extra field is preferred when present.
    Without it the DOS date is read as local time here, the zip convention.
    """
    mtime = _extended_mtime(info.extra)
    if mtime is not None:
        return datetime.fromtimestamp(mtime, timezone.utc)
    try:
        return datetime(*info.date_time).astimezone(timezone.utc)
    except ValueError:  # a corrupt DOS date; the DOS epoch sorts it before any real time
        return datetime(1980, 1, 1, tzinfo=timezone.utc)


def _extended_mtime(extra: bytes) -> int | None:
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        body = extra[4 : 4 + size]
        if tag == _ZIP_EXTENDED_TIMESTAMP and len(body) >= 5 and body[0] & 1:
            return struct.unpack("<i", body[1:5])[0]
        extra = extra[4 + size :]
    return None
