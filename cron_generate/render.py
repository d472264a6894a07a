"""The crontab text: a pure function of the validated jobs and the config.

Every value that reaches the crontab has passed its own validator in the
config pipeline (schedule, keep_alive, slug, user, runner paths). This module
checks again, independently, because the file it builds is executed by root
every minute: defence in depth, so that no input can add a line its author did
not write as a schedule.

The rules, applied to every rendered field:

- no CR, LF or NUL anywhere (the only characters that end a crontab line);
- a schedule passes the config pipeline's ``check_schedule`` (so that
  ``--validate`` and cron-generate agree on every schedule), and is five cron
  fields of ``[A-Za-z0-9*,/-]`` separated by spaces and tabs, or an ``@``
  macro other than ``@reboot``;
- a user name and a slug have their usual shapes (no blanks);
- the command field is built here: the runner path is shell-quoted (cron runs
  the command with ``/bin/sh -c``) and every ``%`` is escaped as ``\\%``
  (cron turns a bare ``%`` into a newline and feeds the rest to stdin); with
  a config other than /etc/process-control.yaml, ``--config PATH`` is passed
  the same way (cron's bare environment would not carry it);
- ``cron_template`` may use only ``{source}``, ``{schedule}``, ``{user}`` and
  ``{command}``; it has comment lines, blank lines and exactly one entry line
  shaped ``{schedule} {user} ... {command} ...``; the rendered block must have
  exactly the template's number of lines, and its entry line the
  schedule + user + command shape.

Anything else raises :class:`CrontabError` (exit status 2).
"""

from __future__ import annotations

import re
import shlex
import string
from datetime import tzinfo
from functools import lru_cache
from typing import Iterable, NamedTuple, Sequence

from run_job.config.schedule import check_schedule, expand, has_hash
from run_job.config.settings import SYSTEM_CONFIG
from run_job.errors import EXIT_USAGE, ProcessControlError
from run_job.model import Config, Job

# Debian cron's rule for /etc/cron.d file names (cron(8), the run-parts rule):
# letters, digits, underscores and hyphens only; anything else is ignored.
# All these patterns are used with fullmatch: Python's '$' also matches before
# a final newline, which is exactly the character that must never pass.
CRON_D_NAME = re.compile(r"[A-Za-z0-9_-]+")
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")  # at most jobs.SLUG_MAX characters
# Debian's useradd accepts a little more than NAME_REGEX; what matters here is
# that the name is one blank-free word.
USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEDULE_FIELD = re.compile(r"[A-Za-z0-9*,/-]+")
MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
PLACEHOLDERS = frozenset({"source", "schedule", "user", "command"})
_LINE_BREAKERS = (("\n", "a newline"), ("\r", "a carriage return"), ("\0", "a NUL byte"))
_BREAKER = re.compile("[\n\r\0]")
_CR_NUL = re.compile("[\r\0]")
# An entry line of a rendered block: schedule (macro or 5 fields), user, command.
_ENTRY_SHAPE = re.compile(
    r"^[ \t]*(?:@[a-z]+|[A-Za-z0-9*,/-]+(?:[ \t]+[A-Za-z0-9*,/-]+){4})[ \t]+\S+[ \t]+\S")


class CrontabError(ProcessControlError):
    """The crontab cannot be rendered or written safely."""

    exit_status = EXIT_USAGE


class Template(NamedTuple):
    """A checked ``cron_template``: its text (ending with a newline) and line count."""

    text: str
    lines: int
    entry_index: int  # which line is the cron entry


def check_line_safe(value: object, what: str) -> str:
    """Return ``value`` when it holds no CR, LF or NUL; else raise."""
    if not isinstance(value, str):
        raise CrontabError(f"{what} is not a string: {value!r}")
    if _BREAKER.search(value):
        name = next(n for bad, n in _LINE_BREAKERS if bad in value)
        raise CrontabError(f"{what} contains {name} ({value!r}); refusing to write a crontab line from it")
    return value


@lru_cache(maxsize=4096)
def _schedule_shape(schedule: str) -> tuple[str | None, str | None]:
    """(the schedule as written to the crontab, None) or (None, what is wrong); cached:
    a job directory repeats a few schedules thousands of times."""
    for bad, name in _LINE_BREAKERS:
        if bad in schedule:
            return None, f"contains {name} ({schedule!r})"
    # The config pipeline's rule first (one owner of the schedule syntax:
    # what --validate accepts is what is written), then the shape check of
    # this module, on its own.
    problem = check_schedule(schedule)
    if problem is not None:
        return None, f"is refused: {problem}"
    text = schedule.strip(" \t")
    if text.startswith("@"):
        if text not in MACROS:
            return None, (f"{text!r} is not a cron macro cron-generate writes "
                          f"(use one of {', '.join(sorted(MACROS))} or five fields)")
        return text, None
    fields = re.split(r"[ \t]+", text)
    if len(fields) != 5 or not all(_SCHEDULE_FIELD.fullmatch(f) for f in fields):
        return None, f"{schedule!r} is not five cron fields of digits, names, '*', ',', '-' and '/'"
    if has_hash(text):
        return None, f"{schedule!r} has a hashed field (H) that was not expanded; cron does not know H"
    return text, None


def check_schedule_shape(schedule: str, what: str) -> str:
    """The schedule as it goes into the crontab (stripped), or raise."""
    if not isinstance(schedule, str):
        raise CrontabError(f"{what} is not a string: {schedule!r}")
    text, problem = _schedule_shape(schedule)
    if text is None:
        raise CrontabError(f"{what} {problem}")
    return text


def check_slug(slug: str) -> str:
    check_line_safe(slug, "the job name")
    if not SLUG.fullmatch(slug):
        raise CrontabError(f"job name {slug!r} does not match {SLUG.pattern}")
    return slug


def check_user(user: str) -> str:
    check_line_safe(user, "config key user")
    if not USER.fullmatch(user):
        raise CrontabError(f"config key user {user!r} is not a user name (one word of letters, digits, '_', '.', '-')")
    return user


@lru_cache(maxsize=64)
def _command_word(path: str, what: str) -> str:
    check_line_safe(path, what)
    if not path.startswith("/"):
        raise CrontabError(f"{what} {path!r} must be an absolute path (cron's PATH is only /usr/bin:/bin)")
    return shlex.quote(path)


def cron_command(path: str, *args: str, what: str = "config key runner_path") -> str:
    """The command field: shell-quoted words, every ``%`` escaped for cron."""
    words = [_command_word(path, what)] + [shlex.quote(check_line_safe(a, "a command argument")) for a in args]
    # cron reads '\%' as a literal '%' and drops the backslash before the shell
    # sees the line; inside shell quotes the '%' is then literal too.
    return " ".join(words).replace("%", "\\%")


def check_template(template: str) -> Template:
    """Check ``cron_template`` and return it ending with a newline."""
    if not isinstance(template, str) or not template.strip():
        raise CrontabError("config key cron_template is empty; leave it out for the default")
    for bad, name in (("\r", "a carriage return"), ("\0", "a NUL byte")):
        if bad in template:
            raise CrontabError(f"config key cron_template contains {name}")
    text = template if template.endswith("\n") else template + "\n"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise CrontabError(f"config key cron_template: {err} (write literal braces as {{{{ and }}}})") from err
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            raise CrontabError(f"config key cron_template: unknown placeholder {{{field}}}; "
                               f"use {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}")
        if spec or conversion:
            raise CrontabError(f"config key cron_template: placeholder {{{field}}} takes no format or conversion")
    lines = text.split("\n")[:-1]
    entries = []
    for index, line in enumerate(lines):
        body = line.lstrip(" \t")
        if not body or body.startswith("#"):
            continue
        entries.append(index)
        if not re.match(r"^\{schedule\}[ \t]+\{user\}[ \t]+\S", body) or "{command}" not in body:
            raise CrontabError(f"config key cron_template: line {index + 1} ({line!r}) is neither a comment nor "
                               "an entry of the form '{schedule} {user} ... {command} ...'")
        if body.count("{schedule}") != 1 or body.count("{user}") != 1 or body.count("{command}") != 1:
            raise CrontabError(f"config key cron_template: line {index + 1} uses a placeholder twice")
        if "{source}" in body:
            raise CrontabError("config key cron_template: {source} may appear only in comment lines")
        if re.search(r"(?<!\\)%", body):
            raise CrontabError(f"config key cron_template: line {index + 1} has a bare '%' "
                               "(cron turns it into a newline); write \\% for a literal percent sign")
    if len(entries) != 1:
        raise CrontabError(f"config key cron_template has {len(entries)} entry lines; it needs exactly one "
                           "('{schedule} {user} {command}'), the other lines being comments")
    return Template(text=text, lines=len(lines), entry_index=entries[0])


def render_block(template: Template, *, source: str, schedule: str, user: str, command: str) -> str:
    """One job's lines through the template, checked to be what it promises."""
    # Every field is checked where it is made; the block is checked as a whole
    # here: no CR or NUL, and exactly the template's newlines (a newline in any
    # field would add one).
    values = {"source": source, "schedule": schedule, "user": user, "command": command}
    block = template.text.format(**values)
    lines = block.split("\n")
    if _CR_NUL.search(block):
        raise CrontabError(f"the crontab lines for {source!r} contain a carriage return or NUL byte")
    if block.count("\n") != template.lines or lines[-1] != "":
        raise CrontabError(f"cron_template rendered {block.count(chr(10))} lines for {source!r}, "
                           f"not the {template.lines} it has")
    if not _ENTRY_SHAPE.match(lines[template.entry_index]):
        raise CrontabError(f"the crontab entry for {source!r} is not 'schedule user command': "
                           f"{lines[template.entry_index]!r}")
    return block


def quote_env_value(value: str, name: str) -> str:
    """An environment value written so that Debian's cron reads it back unchanged.

    Measured with cron 3.0pl1-162: trailing blanks are dropped even inside
    quotes, and quote characters at the start of a value are stripped (also
    inside a quoted value); quotes elsewhere, ``%`` and ``=`` are kept, and
    ``"..."`` keeps leading blanks. Values cron would change are refused.
    """
    check_line_safe(value, f"cron_environment {name}")
    if value == "":
        return '""'  # MAILTO="" turns mail off
    if value != value.rstrip(" \t"):
        raise CrontabError(f"cron_environment {name}: cron drops trailing blanks from {value!r}; remove them")
    body = value.lstrip(" \t")
    if body[:1] in ("'", '"'):
        raise CrontabError(f"cron_environment {name}: cron strips a quote at the start of {value!r}; "
                           "write the value without it")
    if body != value:
        if '"' in value or "'" in value:
            raise CrontabError(f"cron_environment {name}: a value with leading blanks cannot hold quotes")
        return f'"{value}"'
    return value


def environment_lines(env: Iterable[tuple[str, str]]) -> list[str]:
    out = []
    for name, value in env:
        check_line_safe(name, "a cron_environment name")
        if not ENV_NAME.fullmatch(name):
            raise CrontabError(f"cron_environment name {name!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        out.append(f"{name}={quote_env_value(str(value), name)}\n")
    return out


def header(config: Config) -> str:
    """The first lines: say the file is generated (no time stamp: idempotent)."""
    jobdir = check_line_safe(str(config.job_directory), "config key job_directory")
    return ("# Generated by cron-generate (process-control) from the job files in\n"
            f"# {jobdir}\n"
            "# Do not edit: the next cron-generate replaces this file.\n")


def config_arguments(config: Config) -> tuple[str, ...]:
    """``("--config", PATH)`` for every generated command, unless the config is
    the one run-job and sbatch-service find by themselves under cron (pure).

    cron gives an entry a bare environment: a config named by ``--config`` or
    ``$PROCESS_CONTROL_CONFIG`` would not reach the run-job it starts. For
    ``/etc/process-control.yaml`` or the built-in defaults nothing is added,
    so that their crontab stays what it always was.
    """
    if config.source is None:
        return ()
    path = str(config.source)
    if path == SYSTEM_CONFIG or not path.startswith("/"):
        return ()
    if _BREAKER.search(path):
        name = next(n for bad, n in _LINE_BREAKERS if bad in path)
        raise CrontabError(f"the config file's path {path!r} contains {name}; every generated entry names it "
                           "(--config): move the config to a path without one")
    return ("--config", path)


def job_block(job: Job, config: Config, template: Template, user: str,
              config_args: tuple[str, ...] | None = None, seed: str | None = None,
              host_zone: tzinfo | None = None, year: int | None = None) -> str:
    """The lines for one job: an entry, a watchdog entry or a skip comment.
    Hashed fields are written concrete (``seed`` and the slug choose them).
    A job with its own ``timezone`` gets entries at every host time its
    starts can fall on (``zones.host_schedules``, the year ``year`` and the
    next on ``host_zone``'s clock), each calling ``run-job --if-due``."""
    if config_args is None:
        config_args = config_arguments(config)
    if seed is None:
        from run_job.config.schedule import default_seed

        seed = config.hash_seed or default_seed()
    slug = check_slug(job.slug)
    if job.is_service:
        keep_alive = job.service.keep_alive if job.service is not None else None
        if job.disabled:
            return f"# Skipping disabled job {slug}\n"
        if not keep_alive:
            return f"# Skipping service {slug}: no keep_alive schedule\n"
        what = f"service.keep_alive of {slug}"
        schedule = check_schedule_shape(_expanded(keep_alive, seed, slug, what), what)
        command = cron_command(config.service_runner_path, *config_args, "start", slug,
                               what="config key service_runner_path")
    else:
        if job.disabled or not job.schedule:
            return f"# Skipping disabled job {slug}\n"
        what = f"the schedule of {slug}"
        schedule = check_schedule_shape(_expanded(job.schedule, seed, slug, what), what)
        if job.timezone:
            zoned = _zoned_blocks(job, config, template, user, schedule, config_args, host_zone, year)
            if zoned is not None:
                return zoned
        command = cron_command(config.runner_path, *config_args, "--job", slug)
    return render_block(template, source=str(job.path), schedule=schedule, user=user, command=command)


def _zoned_blocks(job: Job, config: Config, template: Template, user: str, schedule: str,
                  config_args: tuple[str, ...], host_zone: tzinfo | None, year: int | None
                  ) -> str | None:
    """The entries of a job with its own time zone, or None when that zone
    keeps the host's clock all year (the plain entry does)."""
    from zoneinfo import ZoneInfo

    from run_job.config.schedule import host_zone as the_host_zone
    from run_job.config.zones import host_schedules

    name = check_line_safe(job.timezone, f"the timezone of {job.slug}")
    try:
        zone = ZoneInfo(name)
    except (ValueError, OSError, KeyError) as err:
        raise CrontabError(f"the timezone of {job.slug} ({name!r}) is not a time zone: {err}") from err
    host_zone = host_zone or the_host_zone()
    if year is None:
        from run_job import clock

        year = clock.now().astimezone(host_zone).year
    entries = host_schedules(schedule, zone, host_zone, year)
    if entries is None:
        return None
    command = cron_command(config.runner_path, *config_args, "--job", job.slug, "--if-due")
    parts = [f"# {job.slug}: {schedule!s} in {name}, on this host's clock in {len(entries)}"
             f" entr{'y' if len(entries) == 1 else 'ies'}; run-job --if-due runs it when due\n"]
    for entry in entries:
        parts.append(render_block(template, source=str(job.path),
                                  schedule=check_schedule_shape(entry, f"an entry of {job.slug}"),
                                  user=user, command=command))
    block = "".join(parts)
    check_line_safe(parts[0][:-1], f"the comment of {job.slug}")
    return block


def _expanded(schedule: str, seed: str, slug: str, what: str) -> str:
    """A schedule with hashed fields made concrete, after the config
    pipeline's own check of what was written (expansion never launders a
    refused schedule); others as they are (``check_schedule_shape`` judges)."""
    if not isinstance(schedule, str) or not has_hash(schedule):
        return schedule
    problem = check_schedule(schedule)
    if problem is not None:
        raise CrontabError(f"{what} is refused: {problem}")
    return expand(schedule, seed, slug)


def render_crontab(jobs: Sequence[Job], config: Config, *, seed: str | None = None,
                   host_zone: tzinfo | None = None, year: int | None = None) -> str:
    """The whole crontab text (ends with a newline), deterministic for its
    input; ``seed`` of hashed fields: default ``config.hash_seed``, else the
    host name; ``host_zone`` (default the host's) and ``year`` (default the
    current one there) place the entries of jobs with their own time zone."""
    crontab = Crontab(config, seed=seed, host_zone=host_zone, year=year)
    parts = [crontab.head]
    for job in sorted(jobs, key=lambda j: j.slug):
        parts.append(crontab.block(job))
    return crontab.checked("".join(parts))


class Crontab:
    """The crontab in parts, for a caller that streams the jobs through in
    slug order: ``head``, then ``block(job)`` of each; every part through
    ``checked``. ``render_crontab`` is the whole text at once."""

    def __init__(self, config: Config, *, seed: str | None = None, host_zone: tzinfo | None = None,
                 year: int | None = None) -> None:
        from run_job.config.schedule import default_seed

        self.config = config
        self.template = check_template(config.cron_template)
        self.user = check_user(config.user)
        self.seed = seed if seed is not None else (config.hash_seed or default_seed())
        self.host_zone, self.year = host_zone, year
        self.head = header(config) + "".join(environment_lines(config.cron_environment))
        self.config_args = config_arguments(config)

    def block(self, job: Job) -> str:
        if job.timezone and (self.host_zone is None or not self.year):
            from run_job import clock
            from run_job.config.schedule import host_zone as the_host_zone

            self.host_zone = self.host_zone or the_host_zone()
            self.year = self.year or clock.now().astimezone(self.host_zone).year
        return job_block(job, self.config, self.template, self.user, self.config_args, self.seed,
                         self.host_zone, self.year)

    @staticmethod
    def checked(text: str) -> str:
        if "\0" in text or "\r" in text:  # unreachable by construction; cheap to be sure
            raise CrontabError("refusing to write a crontab with a NUL or carriage return")
        return text


def check_output_name(name: str) -> str:
    """The file name must pass Debian cron's rule for /etc/cron.d, else cron ignores it."""
    if not CRON_D_NAME.fullmatch(name):
        raise CrontabError(f"output_crontab file name {name!r} is ignored by cron in /etc/cron.d: "
                           "use only letters, digits, '_' and '-' (no dots)")
    return name
