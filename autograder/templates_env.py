"""The jinja2 environment for every template the package renders (notebook text, feedback, reports)."""

from functools import lru_cache

import jinja2


def _points(value) -> str:
    value = float(value)
    return f"{value:g}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("autograder", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    env.filters["points"] = _points
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
