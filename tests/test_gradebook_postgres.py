"""The gradebook on a real PostgreSQL server started on loopback for the test (SQLite is
covered by every other grading test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.demo import ASSIGNMENT

from .conftest import SANDBOXED, cohort_course

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    if not PG_BIN or not shutil.which("runuser"):
        pytest.skip("PostgreSQL is not installed here (./run test installs it when run as root)")
    bin_dir = PG_BIN[-1]
    # the server runs as the postgres user, who cannot enter pytest's private tmp folders
    root = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    shutil.chown(root, "postgres")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    shutil.chown(sock, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_pg + [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    port = _free_port()
    subprocess.run(as_pg + [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run(as_pg + ["createdb", "-h", "127.0.0.1", "-p", str(port), "gradebook"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run(as_pg + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_grades_land_in_a_postgresql_gradebook(course, postgres, tmp_path, shared_client):
    from autograder.grade import grade_assignment

    work = cohort_course(course.with_work(tmp_path, gradebook_url=postgres), tmp_path / "w",
                         ("erin_untouched", "grace_not_a_notebook"))
    assert work.db_url.startswith("postgresql")
    outcome = grade_assignment(work, ASSIGNMENT, "tiny", sandboxed=SANDBOXED, workers=2, log=lambda m: None,
                               client=shared_client)
    by = {r.student: r for r in outcome.results}
    with Gradebook(postgres, course.course_id) as gb:
        assert {s.id for s in gb.students} == set(by)
        for student, result in by.items():
            sub = gb.find_submission(ASSIGNMENT, student)
            assert sub.score == pytest.approx(result.score)
            assert len(sub.notebooks[0].grades) == len(gb.find_notebook(ASSIGNMENT, ASSIGNMENT).grade_cells) + \
                len(gb.find_notebook(ASSIGNMENT, ASSIGNMENT).task_cells)
