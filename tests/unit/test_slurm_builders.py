"""Batch script and sbatch argv builders, against golden files.

Values are adversarial (spaces, quotes, ``;``, ``$()``, ``%``, newlines, a
backslash). ``UPDATE_GOLDEN=1 pytest tests/unit/test_slurm_builders.py``
rewrites the golden files; review the diff.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from run_job.errors import SlurmError
from run_job.slurm.vocabulary import (build_batch_script, build_sbatch_argv, job_name, output_option,
                           script_exports, time_limit)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "slurm"
RUN_DIR = "/srv/pc out/my-job/2026-11-22T03:00:00.000000Z ;'x' %j"
OUTPUT = RUN_DIR + "/output.log"
COMMANDS = [
    ["echo", "hello world", "it's", '"double"', "$HOME", "`id`", "$(id)", "a;b", "100%"],
    ["/usr/bin/env", "line1\nline2", "back\\slash", ""],
    ["sh", "-c", "exit 3"],
]
EXPORTS = [("GREETING", "it's \"x\" $HOME;\nnext"), ("RUN_JOB_NAME", "my-job"),
           ("EMPTY", "")]


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_batch_script_golden():
    script = build_batch_script(slug="my-job", run_id="2026-11-22T03:00:00.000000Z",
                                commands=COMMANDS, exports=EXPORTS,
                                working_directory="/home/svc/work dir $(rm -rf /)",
                                run_dir=RUN_DIR, output_path=OUTPUT)
    golden("batch_script.sh", script)


def test_batch_script_quotes_every_value():
    script = build_batch_script(slug="s", run_id="r", commands=COMMANDS, exports=EXPORTS,
                                working_directory="/w d", run_dir=RUN_DIR, output_path=OUTPUT)
    for argv in COMMANDS:
        assert '"$_pc_env" -- ' + " ".join(shlex.quote(w) for w in argv) in script
    assert f"export GREETING={shlex.quote(EXPORTS[0][1])}" in script
    assert "exec >>" + shlex.quote(OUTPUT) + " 2>&1 </dev/null" in script
    assert not any(line.startswith("#SBATCH") for line in script.splitlines())


@pytest.mark.parametrize("name", ["A B", "1X", "A-B", "", "A=B", "X;rm"])
def test_batch_script_refuses_unexportable_names(name):
    with pytest.raises(SlurmError, match="cannot be passed"):
        build_batch_script(slug="s", run_id="r", commands=[["true"]], exports=[(name, "v")],
                           working_directory="/", run_dir="/r", output_path="/r/o")


def test_batch_script_needs_a_command():
    with pytest.raises(SlurmError):
        build_batch_script(slug="s", run_id="r", commands=[], exports=[],
                           working_directory="/", run_dir="/r", output_path="/r/o")


def test_sbatch_argv_golden():
    argv = build_sbatch_argv(script_path=RUN_DIR + "/job.sbatch", name=job_name("my-job"),
                             output_path=OUTPUT, run_dir=RUN_DIR, partition="pc alt",
                             time="15", options=("--mem=1G", "--comment=a b; c"))
    golden("sbatch_argv.json", json.dumps(argv, indent=1) + "\n")
    assert argv[-1] == RUN_DIR + "/job.sbatch"  # nothing can follow the script
    assert argv.index("--mem=1G") > argv.index("--export=ALL")


def test_sbatch_argv_without_partition_or_time():
    argv = build_sbatch_argv(script_path="/r/job.sbatch", name="j.run-job", output_path="/r/o",
                             run_dir="/r", partition=None, time=None)
    assert not any(a.startswith(("--partition", "--time")) for a in argv)
    assert argv[:2] == ["sbatch", "--parsable"]


def test_job_name_cannot_collide_with_a_service():
    assert job_name("web") == "web.run-job"
    assert not job_name("web").endswith("-service")


@pytest.mark.parametrize("path,expected", [
    ("/plain/output.log", "/plain/output.log"),
    ("/a%j/o%%.log", "/a\\%j/o\\%\\%.log"),
    ("/back\\slash/o.log", "/dev/null"),
])
def test_output_option(path, expected):
    assert output_option(path) == expected


@pytest.mark.parametrize("slurm_time,timeout,expected", [
    ("2-00:00:00", 60.0, "2-00:00:00"),
    (None, 60.0, "1"),
    (None, 61.0, "2"),
    (None, 1.0, "1"),
    (None, 5400.0, "90"),
    (None, None, None),
    (None, 0.0, None),
])
def test_time_limit(slurm_time, timeout, expected):
    assert time_limit(slurm_time, timeout) == expected


def test_script_exports_only_what_sbatch_would_not_carry():
    env = {"PATH": "/bin", "HOME": "/root", "NEW": "1", "CHANGED": "b", "RUN_JOB_NAME": "x"}
    base = {"PATH": "/bin", "HOME": "/root", "CHANGED": "a", "RUN_JOB_NAME": "x"}
    assert script_exports(env, base, always=["RUN_JOB_NAME", "HOME"]) == [
        ("CHANGED", "b"), ("HOME", "/root"), ("NEW", "1"), ("RUN_JOB_NAME", "x")]
