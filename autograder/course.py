"""The course as plain data: loaded from course_config.py in a course root."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path


class CourseError(Exception):
    """A course folder or its configuration is not usable."""


@dataclass(frozen=True)
class Profile:
    name: str
    device: str
    notebook_timeout_s: float
    cell_timeout_s: float
    memory_gb: float


@dataclass(frozen=True)
class Course:
    root: Path                 # where course_config.py, reference/, rubrics/ live
    course_id: str
    assignments: tuple[str, ...]
    profiles: dict[str, Profile]
    default_profile: str
    data_root: Path
    hidden_data_root: Path
    gradebook_url: str
    scheduler_address: str | None = None
    work: Path | None = None   # runtime root (assignments/, release/, submitted/, ...); defaults to root
    source_dir_name: str = "assignments"
    release_dir_name: str = "release"
    due_dates: dict = field(default_factory=dict)    # assignment -> due date text (course_config.DUE_DATES)
    late_penalty: str = "none"                       # nbgrader's LateSubmissionPlugin.penalty_method

    # Folders -------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self.work or self.root

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def rubric_dir(self) -> Path:
        return self.root / "rubrics"

    @property
    def source_dir(self) -> Path:
        return self.workdir / self.source_dir_name

    @property
    def release_dir(self) -> Path:
        return self.workdir / self.release_dir_name

    @property
    def submitted_dir(self) -> Path:
        return self.workdir / "submitted"

    @property
    def autograded_dir(self) -> Path:
        return self.workdir / "autograded"

    @property
    def feedback_dir(self) -> Path:
        return self.workdir / "feedback"

    @property
    def cache_dir(self) -> Path:
        return self.workdir / ".autograder"

    def source_notebook(self, assignment: str) -> Path:
        return self.source_dir / assignment / f"{assignment}.ipynb"

    def release_notebook(self, assignment: str) -> Path:
        return self.release_dir / assignment / f"{assignment}.ipynb"

    def profile(self, name: str | None) -> Profile:
        name = name or self.default_profile
        if name not in self.profiles:
            raise CourseError(f"unknown profile {name!r}; the course defines {sorted(self.profiles)}")
        return self.profiles[name]

    def check_assignment(self, name: str) -> str:
        if name not in self.assignments:
            raise CourseError(
                f"unknown assignment {name!r}; course_config.py lists {list(self.assignments)}")
        return name

    @property
    def db_url(self) -> str:
        """The gradebook URL; a relative SQLite path is relative to the runtime root, like nbgrader."""
        prefix = "sqlite:///"
        url = self.gradebook_url
        if url.startswith(prefix) and not url[len(prefix):].startswith("/"):
            return prefix + str(self.workdir / url[len(prefix):])
        return url

    def due_date(self, assignment: str):
        """The assignment's due date from course_config.DUE_DATES (aware, UTC), or None."""
        text = self.due_dates.get(assignment)
        if not text:
            return None
        from .intake.timestamps import parse_timestamp

        try:
            return parse_timestamp(str(text))
        except ValueError as exc:
            raise CourseError(f"course_config.py: DUE_DATES[{assignment!r}] = {text!r} is not a date: {exc}") from exc

    def with_work(self, work: Path, **changes) -> "Course":
        """The same course with runtime folders under `work` (the demo, tests)."""
        return replace(self, work=Path(work).resolve(), **changes)


def find_course_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding course_config.py."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "course_config.py").is_file():
            return folder
    raise CourseError(f"no course_config.py in {here} or any folder above it")


def load_course(root: Path | None = None) -> Course:
    root = find_course_root(root)
    spec = importlib.util.spec_from_file_location("_course_config", root / "course_config.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a typo in the config must say where
        raise CourseError(f"{root / 'course_config.py'}: {type(exc).__name__}: {exc}") from exc
    try:
        profiles = {name: Profile(name=name, **values) for name, values in module.PROFILES.items()}
        return Course(
            root=root,
            course_id=module.COURSE_ID,
            assignments=tuple(module.ASSIGNMENTS),
            profiles=profiles,
            default_profile=module.DEFAULT_PROFILE,
            data_root=Path(module.DATA_ROOT),
            hidden_data_root=Path(module.HIDDEN_DATA_ROOT),
            gradebook_url=module.GRADEBOOK_URL,
            scheduler_address=getattr(module, "SCHEDULER_ADDRESS", None),
            source_dir_name=getattr(module, "SOURCE_DIR", "assignments"),
            release_dir_name=getattr(module, "RELEASE_DIR", "release"),
            due_dates=dict(getattr(module, "DUE_DATES", {})),
            late_penalty=getattr(module, "LATE_PENALTY", "none"),
        )
    except (AttributeError, TypeError) as exc:
        raise CourseError(f"{root / 'course_config.py'} is incomplete: {exc}") from exc
