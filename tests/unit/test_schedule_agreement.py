"""``--validate`` and cron-generate agree on every schedule (one owner: config/schedule.py).

Each awkward schedule below goes through the config pipeline's
``check_schedule`` and through the crontab renderer (shape check and a whole
rendered entry); both accept it or both refuse it. A schedule that passes
``--validate`` but makes cron-generate refuse the directory means a green CI
and a failed deploy.
"""

from __future__ import annotations

import pytest

from cron_generate.render import CrontabError, check_schedule_shape, check_template, render_block
from run_job.config.schedule import check_schedule
from run_job.model import DEFAULT_CRON_TEMPLATE

BLANKS = {
    "space": " ", "tab": "\t", "two spaces": "  ", "space+tab": " \t",
    "vertical tab": "\x0b", "form feed": "\x0c", "no-break space": "\xa0", "en space": "\u2002",
    "ideographic space": "\u3000", "line separator": "\u2028", "paragraph separator": "\u2029",
    "narrow nbsp": "\u202f", "ogham space": "\u1680", "zero-width space": "\u200b", "BOM": "\ufeff",
    "unit separator": "\x1f", "file separator": "\x1c", "NEL": "\x85", "escape": "\x1b",
    "backspace": "\x08", "DEL": "\x7f", "bell": "\x07",
}

AWKWARD = [
    "*/5 * * * *", "0 3 * * *", "@daily", "@hourly", "@reboot", "@every", "@ daily",
    " */5 * * * *", "*/5 * * * * ", "\t*/5\t*\t*\t*\t*\t", "*/5 * * * *\n", "*/5 * * * *\r",
    "", " ", "\t", "* * * *", "* * * * * *", "0 0 1 jan mon", "0 0 1 JAN MON", "0 0 1 jan-mar *",
    "61 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "1,2,,3 * * * *", "*/5 * * * %",
    "A=b", "* * * * ;", "１ * * * *", "*/５ * * * *", "0 0 * * \u2160", "CRON_TZ=UTC 0 0 * * *",
    "0 0 * * 7", "0\u00a00 * * *", "@daily\x0b", "\x0c@daily", "@daily\u3000",
]
for label, blank in BLANKS.items():
    AWKWARD.append(blank.join(["*/5", "*", "*", "*", "*"]))
    AWKWARD.append(f"*/5{blank}1 * * *")
    AWKWARD.append(f"{blank}0 0 * * *{blank}")


def validate_accepts(schedule: str) -> bool:
    return check_schedule(schedule) is None


def renderer_accepts(schedule: str) -> bool:
    """The renderer's own checks, and the whole entry line it would write."""
    try:
        text = check_schedule_shape(schedule, "the schedule of job")
        render_block(check_template(DEFAULT_CRON_TEMPLATE), source="/jobs/job.yaml", schedule=text,
                     user="root", command="/usr/bin/run-job --job job")
    except CrontabError:
        return False
    return True


@pytest.mark.parametrize("schedule", AWKWARD, ids=[repr(s) for s in AWKWARD])
def test_validate_and_cron_generate_agree(schedule: str) -> None:
    assert validate_accepts(schedule) == renderer_accepts(schedule), check_schedule(schedule)


@pytest.mark.parametrize("label", [k for k in BLANKS if k not in ("space", "tab", "two spaces", "space+tab")])
def test_only_space_and_tab_separate_fields(label: str) -> None:
    problem = check_schedule(BLANKS[label].join(["*/5", "*", "*", "*", "*"]))
    assert problem is not None
    assert "cron reads only spaces and tabs between fields" in problem
    assert "\n" not in problem and BLANKS[label] not in problem  # named, not pasted


def test_named_blanks_in_the_message() -> None:
    assert "a vertical tab (\\x0b)" in check_schedule("*/5\x0b* * * *")
    assert "a form feed (\\x0c)" in check_schedule("*/5 *\x0c* * *")
    assert "a no-break space (U+00A0)" in check_schedule("*/5\xa0* * * *")
    assert "the Unicode space U+2002" in check_schedule("*/5\u2002* * * *")
