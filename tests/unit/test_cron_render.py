"""cron_generate.render: tables and golden files for the pure crontab renderer.

Jobs and configs are built by hand here, bypassing the validators on purpose:
the renderer must refuse a hostile value on its own (defence in depth).
Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from pctest import config_record
from cron_generate.render import (
    CrontabError,
    check_output_name,
    check_template,
    cron_command,
    environment_lines,
    render_crontab,
)
from run_job.model import DEFAULT_CRON_TEMPLATE, Config, Job, Service, replace

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "cron"


def make_config(**kw) -> Config:
    """A config at the packaged paths (the golden files name them)."""
    base = dict(
        output_directory=Path("/var/log/process-control"),
        state_directory=Path("/var/cache/process-control"),
        run_directory=Path("/run/process-control"),
        user="process-control",
    )
    base.update(kw)
    return config_record(Path("/srv/process-control"), **base)


def make_job(slug: str, schedule: str | None = "*/5 * * * *", **kw) -> Job:
    base = dict(
        slug=slug,
        path=Path("/srv/process-control/jobs") / f"{slug}.yaml",
        sha256="0" * 64,
        commands=(("/bin/true",),),
        command_text=("/bin/true",),
        schedule=schedule,
    )
    base.update(kw)
    return Job(**base)


def entry_lines(text: str) -> list[str]:
    """Lines cron would act on: neither blank nor comments nor environment."""
    out = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        if not body or body.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", body):
            continue
        out.append(line)
    return out


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text


# --- reference compatibility -------------------------------------------------

REFERENCE_EXPECTED = """# Skipping disabled job disabled
# Generated from X/schedule_2.yaml
*/10 * * * * Z Y --job schedule_2
# Generated from X/schedule_good.yaml
*/5 * * * * Z Y --job schedule_good
# Skipping disabled job unscheduled
"""


def test_reference_jobs_hand_built_render_the_reference_lines():
    jobs = [
        make_job("unscheduled", None),
        make_job("schedule_good", "*/5 * * * *"),
        make_job("disabled", "* * * * *", disabled=True),
        make_job("schedule_2", "*/10 * * * *"),
    ]
    config = make_config(user="Z", runner_path="/Y")
    text = render_crontab(jobs, config)
    body = text.replace(str(config.job_directory), "X").replace("/Y", "Y")
    assert body.endswith(REFERENCE_EXPECTED)
    header = body[: -len(REFERENCE_EXPECTED)]
    assert all(line.startswith("#") for line in header.splitlines())


def test_reference_scheduled_folder_through_the_real_pipeline(tmp_path):
    """The reference's own crontab test, on its own job files, via load_config + scan."""
    from run_job.config.settings import load_config
    from run_job.config.jobs import scan_job_directory

    src = Path(__file__).resolve().parents[1] / "data" / "reference" / "scheduled"
    jobdir = tmp_path / "jobs dir; 100%"
    jobdir.mkdir()
    for f in sorted(src.glob("*.yaml")):
        (jobdir / f.name).write_bytes(f.read_bytes())
    cfg = tmp_path / "process-control.yaml"
    cfg.write_text(
        f"job_directory: '{jobdir}'\n"
        f"output_directory: '{tmp_path / 'log'}'\n"
        f"state_directory: '{tmp_path / 'state'}'\n"
        f"run_directory: '{tmp_path / 'run'}'\n"
        "output_crontab: console\n"
        "user: process-control\n"
        "runner_path: /usr/bin/run-job\n"
        "service_runner_path: /usr/bin/sbatch-service\n",
        encoding="utf-8")
    config = load_config(str(cfg))
    scan = scan_job_directory(config)
    assert scan.problems == []
    # a config other than /etc/process-control.yaml is named in every entry
    named = render_crontab(scan.jobs, config)
    word = shlex.quote(str(cfg)).replace("%", "\\%")
    assert f" process-control /usr/bin/run-job --config {word} --job schedule_good\n" in named
    # as the reference's own test has it: the config at the default path
    text = render_crontab(scan.jobs, replace(config, source=Path("/etc/process-control.yaml")))
    assert text == named.replace(f" --config {word}", "")
    generic = (text.replace(str(config.job_directory), "X")
               .replace("/usr/bin/run-job", "Y").replace("process-control\n", "Z\n")
               .replace(" process-control ", " Z "))
    assert generic.endswith(REFERENCE_EXPECTED)
    check_golden("reference-scheduled.crontab", generic)


# --- rendering ---------------------------------------------------------------

def test_rich_directory_golden():
    jobs = [
        make_job("nightly-report", "0 3 * * *"),
        make_job("every_minute", "* * * * *"),
        make_job("weekly", "@weekly"),
        make_job("off", "0 1 * * *", disabled=True),
        make_job("manual", None),
        make_job("web-api", None, runner="slurm", service=Service(keep_alive="*/2 * * * *")),
        make_job("worker", None, runner="slurm", service=Service()),
        make_job("paused-svc", None, runner="slurm", disabled=True, service=Service(keep_alive="* * * * *")),
    ]
    config = make_config(cron_environment=(("MAILTO", ""), ("PATH", "/usr/local/bin:/usr/bin:/bin"),
                                           ("GREETING", " hello world")))
    text = render_crontab(jobs, config)
    check_golden("rich.crontab", text)
    assert text.endswith("\n")
    assert len(entry_lines(text)) == 4
    assert "*/2 * * * * process-control /usr/bin/sbatch-service start web-api\n" in text
    assert "# Skipping service worker: no keep_alive schedule\n" in text
    assert "# Skipping disabled job paused-svc\n" in text
    assert 'MAILTO=""\n' in text and 'GREETING=" hello world"\n' in text


def test_order_is_by_slug_and_output_is_deterministic():
    jobs = [make_job(s) for s in ("b", "a", "C", "a-1")]
    one = render_crontab(jobs, make_config())
    two = render_crontab(list(reversed(jobs)), make_config())
    assert one == two
    slugs = re.findall(r"--job (\S+)", one)
    assert slugs == sorted(slugs)


def test_empty_directory_is_a_header_only():
    text = render_crontab([], make_config())
    assert text.endswith("\n") and entry_lines(text) == []


def test_custom_template_like_the_reference_example():
    template = "# Generated from {source}\n{schedule} {user} {command}\n"
    assert make_config().cron_template == DEFAULT_CRON_TEMPLATE == template
    cfg = make_config(cron_template="# job {source}\n# ({schedule})\n{schedule}\t{user}  nice -n 5 {command} >/dev/null 2>&1")
    text = render_crontab([make_job("x")], cfg)
    assert "*/5 * * * *\tprocess-control  nice -n 5 /usr/bin/run-job --job x >/dev/null 2>&1\n" in text
    assert len(entry_lines(text)) == 1


@pytest.mark.parametrize("path, expected", [
    ("/usr/bin/run-job", "/usr/bin/run-job --job j"),
    ("/opt/100%/run-job", "/opt/100\\%/run-job --job j"),
    ("/opt/my tools/run-job", "'/opt/my tools/run-job' --job j"),
    ("/opt/it's;here/run-job", "'/opt/it'\"'\"'s;here/run-job' --job j"),
    ("/opt/a%b c/run-job", "'/opt/a\\%b c/run-job' --job j"),
])
def test_command_field_is_quoted_and_percent_escaped(path, expected):
    assert cron_command(path, "--job", "j") == expected
    text = render_crontab([make_job("j")], make_config(runner_path=path))
    assert expected in text
    assert len(entry_lines(text)) == 1
    assert not re.search(r"(?<!\\)%", entry_lines(text)[0])


# --- refusals: hostile values that got past (simulated) validation -----------

HOSTILE_SCHEDULES = [
    "* * * * *\n* * * * * root /bin/evil",
    "H H * *\n*",  # five words around a newline: never joined into one line
    "H(0-5\n) * * * *",
    "* * * * *\r* * * * * root /bin/evil",
    "* * * * *\0",
    "@reboot",
    "@every_minute",
    "* * * * * root /bin/evil",
    "* * * *",
    "* * * * %",
    "FOO=bar",
    "* * * * ;",
    "",
]


@pytest.mark.parametrize("schedule", [s for s in HOSTILE_SCHEDULES if s])
def test_hostile_schedule_is_refused(schedule):
    with pytest.raises(CrontabError):
        render_crontab([make_job("ok"), make_job("bad", schedule)], make_config())


@pytest.mark.parametrize("schedule", HOSTILE_SCHEDULES[:-1])
def test_hostile_keep_alive_is_refused(schedule):
    svc = make_job("svc", None, runner="slurm", service=Service(keep_alive=schedule))
    with pytest.raises(CrontabError):
        render_crontab([svc], make_config())


@pytest.mark.parametrize("slug", ["ok\n", "a\nb", "a b", "a%b", "-x", "a;b", "a\rb", "a/b", ""])
def test_hostile_slug_is_refused(slug):
    with pytest.raises(CrontabError):
        render_crontab([make_job(slug)], make_config())


@pytest.mark.parametrize("field, value", [
    ("user", "root\n* * * * * root /bin/evil"),
    ("user", "root evil"),
    ("user", "root\n"),
    ("user", "ro%ot"),
    ("user", ""),
    ("runner_path", "/usr/bin/run-job\n* * * * * root /bin/evil"),
    ("runner_path", "/usr/bin/run-job\0"),
    ("runner_path", "run-job"),
    ("service_runner_path", "/usr/bin/sbatch-service\r* * * * * root /bin/evil"),
    ("job_directory", Path("/srv/jobs\n* * * * * root /bin/evil")),
])
def test_hostile_config_value_is_refused(field, value):
    svc = make_job("svc", None, runner="slurm", service=Service(keep_alive="* * * * *"))
    with pytest.raises(CrontabError):
        render_crontab([make_job("j"), svc], make_config(**{field: value}))


def test_hostile_source_path_is_refused():
    job = make_job("j", path=Path("/srv/jobs\n* * * * * root evil/j.yaml"))
    with pytest.raises(CrontabError):
        render_crontab([job], make_config())


@pytest.mark.parametrize("env", [
    (("A", "x\n* * * * * root /bin/evil"),),
    (("A", "x\ry"),),
    (("A\nB", "x"),),
    (("A=B", "x"),),
    (("A\n", "x"),),
    (("1A", "x"),),
    (("", "x"),),
    (("A", "'quoted'"),),
    (("A", '"dq"'),),
    (("A", "trailing "),),
    (("A", " lead 'q'"),),
])
def test_hostile_environment_is_refused(env):
    with pytest.raises(CrontabError):
        render_crontab([make_job("j")], make_config(cron_environment=env))


# Checked against Debian's cron 3.0pl1-162 (the job printed its environment).
@pytest.mark.parametrize("value, line", [
    ("plain", "A=plain\n"),
    ("", 'A=""\n'),
    (" lead", 'A=" lead"\n'),
    ("it's", "A=it's\n"),
    ('say "hi"', 'A=say "hi"\n'),
    ("100% sure", "A=100% sure\n"),
    ("a=b", "A=a=b\n"),
])
def test_environment_values_read_back_unchanged(value, line):
    assert environment_lines([("A", value)]) == [line]


@pytest.mark.parametrize("template", [
    "{schedule} {user} {command}\n{schedule} {user} {command}\n",   # two entries
    "# only a comment {source}\n",                                  # no entry
    "{schedule} {user} {command} {source}\n",                       # source outside a comment
    "{schedule} {user} {command} {evil}\n",                         # unknown placeholder
    "{schedule!r} {user} {command}\n",                              # conversion
    "{schedule:>20} {user} {command}\n",                            # format spec
    "{schedule} {user} {command} %\n",                              # bare percent
    "{schedule} {command}\n",                                       # no user
    "{user} {schedule} {command}\n",                                # wrong order
    "{schedule} {user}\n",                                          # no command
    "# x\nFOO=bar\n{schedule} {user} {command}\n",                  # environment line
    "{schedule} {user} {command}\r\n",                              # CR
    "{schedule} {user} {command} {\n",                              # broken braces
    "{schedule} {user} {command} {command}\n",                      # placeholder twice
    "",
    "   \n",
])
def test_bad_templates_are_refused(template):
    with pytest.raises(CrontabError):
        check_template(template)
    with pytest.raises(CrontabError):
        render_crontab([make_job("j")], make_config(cron_template=template))


def test_template_without_final_newline_still_ends_lines():
    text = render_crontab([make_job("a"), make_job("b")], make_config(cron_template="{schedule} {user} {command}"))
    assert text.endswith("--job b\n")
    assert len(entry_lines(text)) == 2


def test_escaped_percent_in_template_is_kept():
    tpl = check_template("{schedule} {user} {command} > /var/log/x-\\%d\n")
    assert tpl.lines == 1


@pytest.mark.parametrize("name, ok", [
    ("process-control", True), ("pc_2", True), ("A-b_9", True),
    ("process-control.cron", False), (".hidden", False), ("a b", False), ("a~", False),
    ("x.dpkg-old", False), ("", False), ("a\nb", False), ("pc\n", False),
])
def test_output_name_follows_debian_cron_rule(name, ok):
    if ok:
        assert check_output_name(name) == name
    else:
        with pytest.raises(CrontabError):
            check_output_name(name)


def test_entry_count_is_exactly_the_scheduled_jobs():
    jobs = [make_job(f"j{i}", f"{i % 60} * * * *") for i in range(200)]
    jobs += [replace(make_job(f"d{i}"), disabled=True) for i in range(20)]
    text = render_crontab(jobs, make_config())
    assert len(entry_lines(text)) == 200
    assert text.count("# Skipping disabled job") == 20


def test_hashed_fields_are_written_concrete():
    jobs = [make_job("hashed", "H H(2-5) * * *"), make_job("daily", "@daily"),
            make_job("svc", None, runner="slurm", service=Service(keep_alive="H/10 * * * *"))]
    text = render_crontab(jobs, make_config(hash_seed="seed"))
    lines = entry_lines(text)
    assert "H" not in "".join(line.split(" process-control ")[0] for line in lines)
    hashed = next(line for line in lines if line.endswith("--job hashed"))
    minute, hour = hashed.split()[:2]
    assert 0 <= int(minute) <= 59 and 2 <= int(hour) <= 5
    assert "@daily process-control /usr/bin/run-job --job daily" in text
    # the same with the seed given, and another seed moves it
    assert render_crontab(jobs, make_config(), seed="seed") == text
    assert any(render_crontab(jobs, make_config(), seed=f"other-{i}") != text for i in range(5))


def test_a_job_with_its_own_zone_gets_host_entries_calling_if_due():
    from zoneinfo import ZoneInfo

    jobs = [make_job("berlin", "0 9 * * *", timezone="Europe/Berlin"),
            make_job("paris", "0 9 * * *", timezone="Europe/Paris"),
            make_job("plain", "0 9 * * *")]
    text = render_crontab(jobs, make_config(), host_zone=ZoneInfo("America/New_York"), year=2026)
    assert entry_lines(text) == [
        "0 3,4 * * * process-control /usr/bin/run-job --job berlin --if-due",
        "0 3,4 * * * process-control /usr/bin/run-job --job paris --if-due",
        "0 9 * * * process-control /usr/bin/run-job --job plain",
    ]
    assert "# berlin: 0 9 * * * in Europe/Berlin, on this host's clock in 1 entry;" in text
    # on a host that keeps Paris' clock, the Paris job's entry is written as it is
    text = render_crontab(jobs, make_config(), host_zone=ZoneInfo("Europe/Berlin"), year=2026)
    assert "0 9 * * * process-control /usr/bin/run-job --job paris\n" in text


@pytest.mark.parametrize("zone", ["Europe/Berlin\n* * * * * root /bin/evil", "Nowhere/Land", "../../etc/passwd"])
def test_hostile_timezone_is_refused(zone):
    from zoneinfo import ZoneInfo

    with pytest.raises(CrontabError):
        render_crontab([make_job("j", "0 9 * * *", timezone=zone)], make_config(),
                       host_zone=ZoneInfo("UTC"), year=2026)
