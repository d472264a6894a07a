"""run-job's command line (cli.py): the hand-parsed cron forms, argparse's forms."""

from __future__ import annotations

import pytest

from run_job import cli


@pytest.mark.parametrize("argv,job,config,slow", [
    (["--job", "a"], "a", None, False),
    (["-j", "a", "--config", "/c d"], "a", "/c d", False),
    (["--config=/c", "a", "-w"], "a", "/c", True),
    (["--job=a-b_c"], "a-b_c", None, False),
])
def test_fast_parse_cron_forms(argv, job, config, slow):
    opts = cli.fast_parse(argv)
    assert (opts.job, opts.config, opts.slow_start) == (job, config, slow)


@pytest.mark.parametrize("argv", [[], ["--status"], ["-j"], ["a", "b"], ["--job", "--status"],
                                  ["a", "--json"], ["-h"], ["--job", "a", "--job", "b"]])
def test_fast_parse_leaves_the_rest_to_argparse(argv):
    assert cli.fast_parse(argv) is None


def test_argparse_forms():
    assert cli.parse(["-r"]).status is True
    assert cli.parse(["-l", "-r"]).list_jobs is True
    assert cli.parse(["--validate"]).validate == []
    with pytest.raises(SystemExit) as err:
        cli.parse(["-s", "-l"])
    assert err.value.code == 2


def test_validate_targets_after_other_flags():
    assert cli.parse(["--validate", "--json", "some dir"]).validate == ["some dir"]
    assert cli.parse(["--validate", "a", "--json"]).validate == ["a"]


@pytest.mark.parametrize("argv", [["--job", ""], ["--job="], ["-k", " "], ["--history", ""]])
def test_empty_job_names_are_usage_errors(argv):
    with pytest.raises(SystemExit) as err:
        cli.parse(argv)
    assert err.value.code == 2
