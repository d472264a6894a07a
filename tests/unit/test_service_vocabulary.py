"""The service part of the Slurm vocabulary (slurm/vocabulary.py): the batch
script, the sbatch argv, stage output, signals, squeue parsing, the submit
environment.

The batch script is also run with bash (no Slurm) to check that the job's
environment survives quoting and that the last command is exec'd: it has the
script's own pid, the process ``scancel --batch --signal`` reaches.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from run_job.errors import SlurmError
from run_job.slurm import vocabulary as voc

HOSTILE = "a b'c \"d\" $HOME `id` ; 100% \\ \n second line"


def test_script_exact_text():
    script = voc.build_service_script(
        slug="web", commands=[["prep", "a b"], ["server", "--port=8080"]],
        environment={"PORT": "8080", "Q": "it's"}, workdir="/srv/web", log="/log/web/service.log")
    assert script == (
        "#!/bin/bash\n"
        "# Service web (Slurm job web-service); written by sbatch-service.\n"
        "# Every option is on sbatch's command line: no #SBATCH lines here.\n"
        "# The last command is exec'd: it is this script's own process, the one\n"
        "# `scancel --batch --signal=SIG` reaches (stop and reload signals).\n"
        "exec >>/log/web/service.log 2>&1 </dev/null\n"
        "printf '%s\\n' \"sbatch-service: web starts as Slurm job ${SLURM_JOB_ID:-?} on ${HOSTNAME:-?}"
        " at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"\n"
        "cd -- /srv/web || { echo 'sbatch-service: cannot change to /srv/web'; exit 125; }\n"
        "export PORT=8080\n"
        "export Q='it'\"'\"'s'\n"
        "prep 'a b' || exit $?\n"
        "exec server --port=8080\n")


def test_script_runs_with_hostile_values_and_execs_the_last_command(tmp_path):
    folder = tmp_path / "dir with space; it's 100%"
    folder.mkdir()
    log = folder / "service log %j.log"
    out = folder / "out"
    script = voc.build_service_script(
        slug="web",
        commands=[["/bin/sh", "-c", 'printf "%s" "$1" >"$2.arg"', "sh", HOSTILE, str(out)],
                  ["/bin/sh", "-c", 'printf "%s\\n" "$$" "$PWD" >"$1"; printf "%s" "$HOSTILE_VALUE" >"$1.env"',
                   "sh", str(out)]],
        environment={"HOSTILE_VALUE": HOSTILE}, workdir=str(folder), log=str(log))
    path = tmp_path / "script"
    path.write_text(script)
    proc = subprocess.Popen(["bash", str(path)])
    assert proc.wait(timeout=30) == 0
    pid, cwd = out.read_text().splitlines()
    assert int(pid) == proc.pid  # exec'd: the main process is the script's own
    assert cwd == str(folder)
    assert Path(str(out) + ".env").read_text() == HOSTILE
    assert Path(str(out) + ".arg").read_text() == HOSTILE
    assert "sbatch-service: web starts as Slurm job ?" in log.read_text()


def test_script_stops_at_the_first_failing_command(tmp_path):
    marker = tmp_path / "ran"
    script = voc.build_service_script(
        slug="web", commands=[["/bin/sh", "-c", "exit 7"], ["/usr/bin/touch", str(marker)]],
        environment={}, workdir=str(tmp_path), log=str(tmp_path / "log"))
    path = tmp_path / "script"
    path.write_text(script)
    assert subprocess.run(["bash", str(path)]).returncode == 7
    assert not marker.exists()


def test_script_refuses_bad_environment_names_and_no_command():
    with pytest.raises(SlurmError, match="cannot be passed"):
        voc.build_service_script(slug="w", commands=[["x"]], environment={"A-B": "1"},
                                 workdir="/", log="/l")
    with pytest.raises(SlurmError, match="no command"):
        voc.build_service_script(slug="w", commands=[], environment={}, workdir="/", log="/l")


def test_sbatch_argv():
    argv = voc.build_service_sbatch_argv(
        script="/state/services/web.sbatch", name="web-service", log="/log/100%/web/service.log",
        partition="service-pool", time_limit="7-00:00:00", workdir="/srv/web dir",
        options=["--mem=1G", "--comment=x"])
    assert argv == ["sbatch", "--parsable", "--job-name=web-service",
                    "--output=/log/100\\%/web/service.log", "--error=/log/100\\%/web/service.log",
                    "--open-mode=append", "--input=/dev/null", "--export=ALL",
                    "--chdir=/srv/web dir", "--partition=service-pool", "--time=7-00:00:00",
                    "--mem=1G", "--comment=x", "/state/services/web.sbatch"]
    plain = voc.build_service_sbatch_argv(script="/s", name="n", log="/a\\b", partition="p",
                                          time_limit=None, workdir="/")
    assert "--output=/dev/null" in plain and not any(a.startswith("--time") for a in plain)
    assert plain[-1] == "/s"


@pytest.mark.parametrize("stdout, options, problem", [
    ("", [], None),
    ("\n\n", [], None),
    ("#SBATCH --mem=1G\n#SBATCH --comment='two words'\n", ["--mem=1G", "--comment=two words"], None),
    ("#SBATCH -c2 --nice=5\n", ["-c2", "--nice=5"], None),
    ("#SBATCH\t--mem=1G\n", ["--mem=1G"], None),
    ("echo hi\n", [], "must start with '#SBATCH '"),
    ("#SBATCH --mem=1G\nrm -rf /\n", ["--mem=1G"], "line 2"),
    ("#SBATCHX --mem=1G\n", [], "must start"),
    (" #SBATCH --mem=1G\n", [], "must start"),
    ("#SBATCH\n", [], "without an option"),
    ("#SBATCH --partition=debug\n", [], "not allowed"),
    ("#SBATCH --job-name=x\n", [], "not allowed"),
    ("#SBATCH --output=/etc/passwd\n", [], "not allowed"),
    ("#SBATCH --mem 1G\n", [], "not an option"),
    ("#SBATCH --comment='unclosed\n", [], "quotation"),
])
def test_parse_stage_start(stdout, options, problem):
    got, problems = voc.parse_stage_start(stdout)
    assert [o for o in got if o in options] == options
    if problem is None:
        assert problems == [] and got == options
    else:
        assert problems and any(problem in p for p in problems), problems


@pytest.mark.parametrize("text, number", [
    ("TERM", 15), ("SIGTERM", 15), ("term", 15), ("15", 15), ("HUP", 1), ("USR2", 12),
    (" INT ", 2), ("KILL", 9),
])
def test_signal_number(text, number):
    assert voc.signal_number(text) == number


@pytest.mark.parametrize("text", ["", "NOPE", "SIG", "999", "-1", "1.5"])
def test_signal_number_refuses(text):
    with pytest.raises(ValueError):
        voc.signal_number(text)


@pytest.mark.parametrize("stdout, number", [("", None), ("\n", None), ("USR1\n", 10), ("  2  \n", 2)])
def test_parse_stage_signal(stdout, number):
    assert voc.parse_stage_signal(stdout) == number


@pytest.mark.parametrize("stdout", ["USR1\nHUP\n", "kill -HUP\n", "whatever\n"])
def test_parse_stage_signal_refuses(stdout):
    with pytest.raises(ValueError):
        voc.parse_stage_signal(stdout)


def test_squeue_format_and_parse():
    assert voc.squeue_format(voc.SERVICE_FIELDS) == "%i|%T|%u|%P|%N|%S|%V|%r|%j"
    assert voc.squeue_format(voc.BATCH_FIELDS) == voc.SQUEUE_FORMAT == "%i|%T|%u|%P|%j"
    text = ("12|RUNNING|svc|service-pool|node1|2026-11-22T04:00:00|2026-11-22T03:59:59|None|web-service\n"
            "13|PENDING|svc|service-pool||N/A|2026-11-22T04:01:00|Resources|odd|name-service\n")
    first, second = voc.parse_squeue(text, voc.SERVICE_FIELDS)
    assert (first.job_id, first.state, first.nodes, first.since) == ("12", "RUNNING", "node1",
                                                                     "2026-11-22T04:00:00")
    assert first.describe() == "RUNNING on node1"
    assert second.name == "odd|name-service" and second.since == "2026-11-22T04:01:00"
    assert second.describe() == "PENDING (Resources)"
    with pytest.raises(SlurmError):
        voc.parse_squeue("garbage\n", voc.SERVICE_FIELDS)


def test_entries_of_matches_name_and_user_exactly():
    def entry(job_id, state, user, name):
        return voc.QueueEntry(job_id=job_id, state=state, user=user, partition="p", nodes="n",
                              start_time="s", submit_time="v", reason="None", name=name)
    entries = [entry("30", "RUNNING", "svc", "web-service"),
               entry("4", "PENDING", "svc", "web-service"),
               entry("5", "RUNNING", "other", "web-service"),
               entry("6", "RUNNING", "svc", "web-service2"),
               entry("7", "RUNNING", "svc", "web.run-job"),
               entry("8", "COMPLETED", "svc", "web-service"),
               entry("9", "COMPLETING", "svc", "web-service")]
    assert [e.job_id for e in voc.entries_of(entries, "web", "svc")] == ["4", "9", "30"]
    assert voc.entries_of(entries, "db", "svc") == []


def test_submit_environment_is_the_same_from_cron_and_a_shell():
    shell = {"PATH": "/opt/bin:/usr/bin", "HOME": "/root", "USER": "root", "SLURM_CONF": "/etc/s.conf",
             "LANG": "C.UTF-8", "LC_TIME": "de_DE", "PYTHONPATH": "/x", "LD_PRELOAD": "/evil.so",
             "SSH_AUTH_SOCK": "/tmp/a", "TZ": "UTC"}
    cron = {"PATH": "/usr/bin:/bin", "HOME": "/root", "SLURM_CONF": "/etc/s.conf", "LANG": "C.UTF-8",
            "LC_TIME": "de_DE", "TZ": "UTC"}
    a = voc.submit_environment(shell, user="svc", home="/home/svc")
    b = voc.submit_environment(cron, user="svc", home="/home/svc")
    assert a == b == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/svc", "USER": "svc",
                      "LOGNAME": "svc", "SHELL": "/bin/sh", "SLURM_CONF": "/etc/s.conf",
                      "LANG": "C.UTF-8", "LC_TIME": "de_DE", "TZ": "UTC"}
