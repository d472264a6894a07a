"""The sbatch option allowlist: every spelling sbatch accepts, table-tested."""

from __future__ import annotations

import pytest

from run_job.slurm.options import (ALLOWED, LONG_OPTIONS, REFUSED, SHORT_OPTIONS,
                                   check_option, check_options, resolve_long)

ALLOWED_ITEMS = [
    "--mem=1G", "--mem-per-cpu=500M", "--cpus-per-task=2", "-c2", "--ntasks=4", "-n4",
    "--nodes=1", "-N1", "--nodes=1-2", "--gres=gpu:1", "--account=fr-tech", "-Afr",
    "--qos=high", "-qhigh", "--constraint=ssd&fast", "-Cssd", "--comment=hello world; 'x'",
    "--mail-type=END,FAIL", "--mail-user=ops@example.org", "--signal=B:USR1@60",
    "--exclusive", "--exclusive=user", "--nice", "--nice=10", "--licenses=matlab:1",
    "--license=matlab:1", "--reservation=maint", "--tmp=10G", "--no-kill", "-k",
    "--nodelist=localhost", "-wlocalhost", "--exclude=node9", "--hint=nomultithread",
    "--oversubscribe", "-s", "-O", "-sO", "--gpus=1", "-G1", "--wckey=x", "--priority=5",
    "--mem=", "--mail-ty=END",  # see below: empty value refused; abbreviations allowed
]


@pytest.mark.parametrize("item", [i for i in ALLOWED_ITEMS if i != "--mem="])
def test_allowed(item):
    assert check_option(item) is None


@pytest.mark.parametrize("item,needle", [
    # set by run-job, in every spelling
    ("--job-name=x", "--job-name is not allowed"),
    ("-Jx", "-J (= --job-name) is not allowed"),
    ("--job=x", "(= --job-name) is not allowed"),
    ("--output=/tmp/x", "--output is not allowed"),
    ("-o/tmp/x", "-o (= --output)"),
    ("--out=x", "(= --output)"),
    ("--error=x", "--error is not allowed"),
    ("-ex", "-e (= --error)"),
    ("--export=NONE", "--export is not allowed"),
    ("--export-file=/x", "--export-file is not allowed"),
    ("--exp=ALL", "ambiguous abbreviation --exp"),
    ("--get-user-env", "--get-user-env is not allowed"),
    ("--partition=x", "slurm.partition"),
    ("--part=x", "--part (= --partition) is not allowed"),
    ("-px", "-p (= --partition)"),
    ("--par=x", "ambiguous abbreviation --par"),
    ("--parsable", "--parsable is not allowed"),
    ("--pars", "(= --parsable) is not allowed"),
    ("--time=5", "slurm.time"),
    ("-t5", "-t (= --time)"),
    ("--ti=5", "ambiguous"),
    ("--time-min=5", "--time-min is not allowed"),
    ("--wait", "--wait is not allowed"),
    ("-W", "-W (= --wait)"),
    ("--wrap=rm -rf /", "--wrap is not allowed"),
    ("--wr=x", "(= --wrap) is not allowed"),
    ("--chdir=/", "working_directory"),
    ("-D/", "-D (= --chdir)"),
    ("--open-mode=truncate", "--open-mode is not allowed"),
    ("--array=1-3", "--array is not allowed"),
    ("-a1-3", "-a (= --array)"),
    ("--dependency=afterok:1", "--dependency is not allowed"),
    ("-dafterok:1", "-d (= --dependency)"),
    ("--uid=0", "--uid is not allowed"),
    ("--gid=0", "--gid is not allowed"),
    ("--hold", "--hold is not allowed"),
    ("-H", "-H (= --hold)"),
    ("--begin=now+1hour", "--begin is not allowed"),
    ("--requeue", "--requeue is not allowed"),
    ("--no-requeue", "--no-requeue is not allowed"),
    ("--clusters=x", "--clusters is not allowed"),
    ("--cluster=x", "--cluster is not allowed"),
    ("-Mx", "-M (= --clusters)"),
    ("--input=/etc/passwd", "--input is not allowed"),
    ("--test-only", "--test-only is not allowed"),
    ("-Q", "-Q (= --quiet)"),
    ("-sJx", "-J (= --job-name)"),  # bundled flags do not hide a refused option
    # spelling
    ("--nodes", "needs a value: write --nodes=VALUE"),
    ("-N", "-N (= --nodes) needs a value"),
    ("--nodes 2", "as one item"),
    ("-N 2", "as one item"),
    ("2", "not an option"),
    ("--mem=", "empty value"),
    ("--contiguous=yes", "takes no value"),
    ("--mail=x", "ambiguous abbreviation --mail"),
    ("--no-such=1", "unknown sbatch option --no-such"),
    ("-y", "unknown sbatch option -y"),
    ("", "empty option"),
    ("--", "is not an option"),
    ("--gres=gpu:1\n#SBATCH --uid=0", "newline"),
    ("--comment=a\rb", "control character"),
])
def test_refused(item, needle):
    why = check_option(item)
    assert why is not None and needle in why, why


def test_check_options_one_message_per_refused_item():
    problems = check_options(["--mem=1G", "--wrap=x", "-c2", "--part=p", "--nodes", "2"])
    assert problems == [
        "options[1] '--wrap=x': --wrap is not allowed: run-job writes the batch script itself",
        "options[3] '--part=p': --part (= --partition) is not allowed: use the job's 'slurm.partition' key",
        "options[4] '--nodes': --nodes needs a value: write --nodes=VALUE in one item",
        "options[5] '2': not an option; write the option and its value as one item: --name=value or -Xvalue",
    ]
    assert check_options([]) == []
    assert check_options(["--mem=1G", "-c2"]) == []


def test_abbreviations_resolve_as_getopt_does():
    assert resolve_long("part") == ("partition", "")
    assert resolve_long("time") == ("time", "")  # exact match beats --time-min
    assert resolve_long("mem") == ("mem", "")
    assert resolve_long("mem-per")[0] is None
    assert resolve_long("tasks") == ("tasks-per-node", "")
    assert resolve_long("zzz") == (None, "unknown sbatch option --zzz")


def test_tables_are_consistent():
    assert set(SHORT_OPTIONS.values()) <= set(LONG_OPTIONS)
    assert set(REFUSED) <= set(LONG_OPTIONS)
    assert "mem" in ALLOWED and "job-name" not in ALLOWED
    assert set(LONG_OPTIONS.values()) == {"req", "opt", "no"}
