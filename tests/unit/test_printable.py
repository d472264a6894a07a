"""run_job.printable: text from files shown on one line, controls escaped."""

from __future__ import annotations

import pytest

from run_job.errors import ConfigError, Problem
from run_job.printable import printable


@pytest.mark.parametrize("text, shown", [
    ("plain", "plain"),
    ("Grüße, 日本, émoji 🎉", "Grüße, 日本, émoji 🎉"),
    ("a\nb", "a\\nb"),
    ("a\r\nb", "a\\r\\nb"),
    ("tab\there", "tab\\there"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("nul\0", "nul\\x00"),
    ("del\x7f", "del\\x7f"),
    ("csi\x9b2J", "csi\\x9b2J"),
    ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
    ("bidi\u202eevil\u2066", "bidi\\u202eevil\\u2066"),
    (42, "42"),
])
def test_printable(text, shown) -> None:
    assert printable(text) == shown
    assert "\n" not in printable(text)


def test_every_problem_renders_on_one_line() -> None:
    problem = Problem("/jobs/we\nird\x1b[2J.yaml", "an environment name cannot hold\ncontrol characters", 3, 1,
                      "environment.a\nb")
    assert problem.render() == ("/jobs/we\\nird\\x1b[2J.yaml:3: environment.a\\nb: an environment name cannot "
                                "hold\\ncontrol characters")
    assert problem.as_json()["key_path"] == "environment.a\nb"  # JSON stays exact
    err = ConfigError("x", (problem, Problem("f", "second")))
    assert err.lines() == [problem.render(), "f: second"]
