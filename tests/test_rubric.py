"""Rubric files: the real ones load; typos and gaps fail with file:line errors."""

import json

import pytest

from autograder.rubric import RubricError, load_rubric, parse_rubric


def test_every_course_rubric_loads(course):
    for name in course.assignments:
        rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
        assert rubric.assignment == name
        assert rubric.total_points > 0
        for part in rubric.parts:
            for profile in ("tiny", "full"):
                if part.kind in ("metric", "timing"):
                    assert part.bands[profile][0].points == part.points


def test_every_evaluation_plan_is_plain_data(course):
    """The evaluator gets its plan as JSON: every part it measures is in it, and nothing else."""
    for name in course.assignments:
        rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
        plan = json.loads(json.dumps(rubric.evaluation_plan()))
        measured = {p.id for p in rubric.parts if p.kind in ("artifact", "efficiency")}
        assert {i for i, *_ in plan["checks"] + plan["efficiency"]} == measured, name
        assert plan["classification"] == bool(rubric.of_kind("metric")) and plan["dataset"] == rubric.dataset


@pytest.fixture
def text(course):
    return (course.rubric_dir / "lenet5_mnist.yaml").read_text()


def _line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, expected", [
    ("    points: 4\n    bands", "    pionts: 4\n    bands", "unknown key 'pionts'"),
    ("kind: metric", "kind: metrc", "did you mean 'metric'"),
    ("metric: accuracy", "metric: acuracy", "did you mean 'accuracy'"),
    ("version: 1", "version: one", "version"),
])
def test_typos_are_reported_with_their_line(text, old, new, expected):
    bad = text.replace(old, new, 1)
    with pytest.raises(RubricError) as err:
        parse_rubric(bad, "r.yaml")
    message = str(err.value)
    assert expected in message
    line = int(message.split(":")[1])
    assert abs(line - _line_of(bad, new.strip().splitlines()[0])) <= 1, message


def test_missing_profile_band_is_an_error(text):
    start = text.index("      full:\n        - {at_least: 0.985")
    end = text.index("  - id: timing")
    with pytest.raises(RubricError, match="no bands for the 'full' profile"):
        parse_rubric(text[:start] + "\n" + text[end:], "r.yaml")


def test_duplicate_part_and_wrong_name(text):
    with pytest.raises(RubricError, match="used twice"):
        parse_rubric(text.replace("id: timing", "id: accuracy"), "r.yaml")
    with pytest.raises(RubricError, match="file is for 'other'"):
        parse_rubric(text, "r.yaml", expected_name="other")


def test_not_yaml_at_all():
    with pytest.raises(RubricError, match=r"r.yaml:\d+: not valid YAML"):
        parse_rubric("parts: [\n  - {", "r.yaml")
