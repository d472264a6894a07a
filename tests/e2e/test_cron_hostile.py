"""The hostile corpus (tests/data/hostile-cron/) through the real cron-generate.

No bad input may add a line to the crontab that its author did not write as a
schedule (SPEC §8). Each corpus file runs on its own, beside two good jobs,
with an installed file in place: cron-generate either refuses (exit 2, nothing
on stdout, installed file byte for byte unchanged) or writes exactly one entry
line per scheduled job, each of the one strict shape.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from pctest import DATA, USER, command, command_env, config_settings

CORPUS = DATA / "hostile-cron"
INSTALLED = b"# installed before the test\n17 4 * * * nobody /bin/true\n"
RUNNER = "/usr/bin/run-job"


def cron_generate(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command("cron-generate") + ["--config", str(cfg), *args],
                          capture_output=True, text=True, env=command_env(), timeout=60)


def acted_on(text: str) -> list[str]:
    """Every line cron would act on (not blank, not a comment)."""
    return [l for l in text.split("\n") if l.strip(" \t") and not l.lstrip(" \t").startswith("#")]


def setup_site(tmp_path: Path, config_extra: dict | None = None) -> tuple[Path, Path, Path]:
    root = tmp_path / "hostile site"
    jobs = root / "jobs"
    out = root / "cron.d"
    jobs.mkdir(parents=True)
    out.mkdir()
    for slug, sched in (("good-a", "*/5 * * * *"), ("good_b", "0 3 * * *")):
        (jobs / f"{slug}.yaml").write_text(f"command: /bin/true\nschedule: '{sched}'\n")
    config = config_settings(root, output_crontab=str(out / "process-control"), runner_path=RUNNER,
                             service_runner_path="/usr/bin/sbatch-service")
    for key, value in (config_extra or {}).items():
        if isinstance(value, str):
            value = value.replace("{folder}", str(root))
        config[key] = value
    if "job_directory" in (config_extra or {}):
        alt = Path(config["job_directory"])
        if not alt.exists():
            alt.mkdir(parents=True)
            for f in jobs.iterdir():
                (alt / f.name).write_bytes(f.read_bytes())
    cfg = root / "process-control.yaml"
    cfg.write_text(yaml.safe_dump(config, allow_unicode=False), encoding="utf-8")
    (out / "process-control").write_bytes(INSTALLED)
    return cfg, jobs, out / "process-control"


def assert_refused(cfg: Path, output: Path) -> None:
    before = output.stat()
    for args in ((), ("--stdout",)):
        res = cron_generate(cfg, *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert res.stdout == ""
        assert "Traceback" not in res.stderr and res.stderr.strip()
        # one problem per line, even when a file name holds a newline
        for line in res.stderr.splitlines():
            assert line.startswith((str(cfg.parent), "cron-generate: ")), line
    assert output.read_bytes() == INSTALLED
    after = output.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]  # nothing beside it


def assert_exact_entries(text: str, slugs: list[str], cfg: Path) -> None:
    lines = acted_on(text)
    # the entries name the (non-default) config, shell-quoted, '%' escaped for cron
    config = " --config " + shlex.quote(str(cfg)).replace("%", "\\%")
    shape = re.compile(r"(\*/5 \* \* \* \*|0 3 \* \* \*) " + re.escape(USER) + " " + re.escape(RUNNER)
                       + re.escape(config) + r" --job ([A-Za-z0-9][A-Za-z0-9_-]*)")
    got = []
    for line in lines:
        m = shape.fullmatch(line)
        assert m, f"unexpected line cron would act on: {line!r}"
        got.append(m.group(2))
    assert got == sorted(slugs)


JOB_CASES = sorted((CORPUS / "jobs").glob("*.yaml"))
CONFIG_CASES = sorted((CORPUS / "configs").glob("*.yaml"))


def test_corpus_is_there():
    assert len(JOB_CASES) >= 15 and len(CONFIG_CASES) >= 10


@pytest.mark.parametrize("case", JOB_CASES, ids=[p.stem for p in JOB_CASES])
def test_hostile_job_file(tmp_path, case):
    expect = case.read_text(encoding="utf-8").splitlines()[0]
    assert expect in ("# expect: refuse", "# expect: any"), f"{case.name}: first line must say what to expect"
    cfg, jobs, output = setup_site(tmp_path)
    (jobs / case.name).write_bytes(case.read_bytes())
    res = cron_generate(cfg, "--stdout")
    if expect == "# expect: refuse" or res.returncode != 0:
        assert_refused(cfg, output)
        return
    assert_exact_entries(res.stdout, ["good-a", "good_b", case.stem], cfg)
    res = cron_generate(cfg)
    assert res.returncode == 0, res.stderr
    assert_exact_entries(output.read_text(), ["good-a", "good_b", case.stem], cfg)


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[p.stem for p in CONFIG_CASES])
def test_hostile_config(tmp_path, case):
    extra = yaml.safe_load(case.read_text(encoding="utf-8"))
    cfg, _jobs, output = setup_site(tmp_path, extra)
    assert_refused(cfg, output)


@pytest.mark.parametrize("name", [
    "bad name.yaml",
    "ok\n.yaml",  # a slug pattern ending in '$' lets a final newline through
    "x\n* * * * * root evil.yaml",
    "* * * * * root evil.yaml",
    "tab\there.yaml",
    "cr\rhere.yaml",
    "per%cent.yaml",
    "semi;colon.yaml",
    "-dash.yaml",
])
def test_hostile_file_name(tmp_path, name):
    cfg, jobs, output = setup_site(tmp_path)
    (jobs / name).write_text("command: /bin/true\nschedule: '* * * * *'\n")
    assert_refused(cfg, output)
