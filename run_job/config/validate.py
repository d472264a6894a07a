"""``run-job --validate [NAME|FILE|DIR ...]``: lint config and job files, all of them.

No argument: the global config and every file of the job directory. Arguments
are job names (looked up in the job directory), files or folders (for a config
repo's CI, which validates its checkout before deploying). Every file is read
and validated for real each time (no cache); every problem of every file is
reported as ``file:line: key.path: message``, then a summary. Exit 0 when all
are valid, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from run_job.config import yamlfile
from run_job.config.settings import locate_config, read_config
from run_job.errors import ConfigError, Problem
from run_job.model import Job
from run_job.printable import printable
from run_job.config.jobs import check_job_file, is_slug, iter_job_directory, job_path


class _Report:
    """What ``--validate`` found. A valid file is only counted unless
    ``keep_valid`` (the JSON document lists every file); of a valid job only
    what a note needs is kept (``_Noted``): 100,000 files stream through."""

    def __init__(self, keep_valid: bool = True) -> None:
        self.keep_valid = keep_valid
        self.files: list[dict] = []  # every file with problems (and, keep_valid, every other)
        self.tally: dict[tuple[str, bool], int] = {}  # (kind, valid) -> files
        self.errors = 0
        self.ignored: list[str] = []
        self.notes: list[str] = []
        self.jobs_skipped = False  # the job files were not checked: the config is invalid
        self.config_source: Path | None = None
        self.warnings: list[str] = []
        self.jobs: list[tuple[str, Any]] = []  # (file, Job or _Noted) of each valid job a note may need

    def add(self, file: str, kind: str, job: str | None, problems: list[Problem]) -> None:
        valid = not problems
        self.tally[kind, valid] = self.tally.get((kind, valid), 0) + 1
        self.errors += len(problems)
        if problems or self.keep_valid:
            self.files.append({"file": file, "kind": kind, "job": job, "valid": valid,
                               "errors": [p.as_json() for p in problems], "_problems": problems})

    def add_job(self, file: str, job: Job) -> None:
        """A valid job: kept (compactly) when a note may speak of it."""
        noted = _Noted.of(job)
        if noted is not None:
            self.jobs.append((file, noted))

    @property
    def valid(self) -> bool:
        return not any(count for (_kind, valid), count in self.tally.items() if not valid) \
            and not self.jobs_skipped

    def counts(self) -> dict:
        """The JSON summary: every file, and job files and configs apart."""
        def count(kind: str | None, valid: bool | None = None) -> int:
            return sum(n for (k, v), n in self.tally.items()
                       if (kind is None or k == kind) and (valid is None or v == valid))

        return {"checked": count(None), "invalid": count(None, False),
                "errors": self.errors,
                "job_files": count("job"), "invalid_job_files": count("job", False),
                "configs": count("config"), "invalid_configs": count("config", False),
                "job_files_skipped": self.jobs_skipped}


class _Noted:
    """What the notes of ``--validate`` read of a valid job (hashed schedules,
    time zones, limits), without the rest of the Job."""

    __slots__ = ("slug", "path", "schedule", "service", "disabled", "timezone", "is_service", "limits")

    def __init__(self, job: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(job, name))
        if job.limits is None:
            self.path = None  # only the limits' note names it (a Path is the largest part)

    @classmethod
    def of(cls, job: Any) -> _Noted | None:
        from run_job.config.schedule import has_hash

        keep_alive = job.service.keep_alive if job.service is not None else None
        if has_hash(job.schedule) or has_hash(keep_alive) or job.timezone or job.limits is not None:
            return cls(job)
        return None


def summary(counts: dict, folders_invalid: int = 0) -> str:
    """The last line of ``--validate`` (pure): the config counted apart from the job files."""
    jobs, bad_jobs = counts["job_files"], counts["invalid_job_files"]
    configs, bad_configs = counts["configs"], counts["invalid_configs"]
    job_files = f"{jobs} job file{'s' if jobs != 1 else ''}"
    if counts["invalid"] == 0 and not counts["job_files_skipped"]:
        what = {0: "", 1: "config and "}.get(configs, f"{configs} configs and ")
        return f"OK: {what}{job_files} valid"
    parts = []
    if counts["job_files_skipped"]:
        parts.append("job files not checked")
    elif bad_jobs or jobs:
        parts.append(f"{bad_jobs} of {job_files} invalid")
    if bad_configs:
        parts.append("config invalid" if configs == 1 else f"{bad_configs} of {configs} configs invalid")
    if folders_invalid:
        parts.append("job folder invalid" if folders_invalid == 1 else f"{folders_invalid} job folders invalid")
    errors = counts["errors"]
    parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    return "FAILED: " + ", ".join(parts)


def _add_scan(report: _Report, config, directory: Path | None = None) -> None:
    """Every file of a job folder, validated one at a time, into the report."""
    ignored = []
    leftover: dict[str, list[Problem]] = {}
    for path, kind, job, problems in iter_job_directory(config, directory):
        if kind == "folder":  # missing, unreadable or untrusted: nothing else comes
            for problem in problems:
                leftover.setdefault(problem.file, []).append(problem)
            continue
        if kind == "ignored":
            ignored.append(path)
            continue
        name = str(path)
        own = [p for p in problems if p.file == name]
        for problem in problems:
            if problem.file != name:
                leftover.setdefault(problem.file, []).append(problem)
        report.add(name, "job", path.name[:-5] if kind == "job" else None, own)
        if job is not None and not problems:
            report.add_job(str(job.path), job)
    for name, folder_problems in leftover.items():  # folder-level problems (missing, permissions)
        report.add(name, "folder", None, folder_problems)
    for path in ignored:
        if path.is_dir():
            continue
        report.ignored.append(str(path))


def _load_config_for(report: _Report, config_path: str | None):
    """The config to check job files against (None: they cannot be checked);
    the config's own problems are part of the report."""
    from run_job.config.settings import build_config, default_settings

    try:
        source = locate_config(config_path)
    except ConfigError as err:  # a named config that is missing: a finding like any other
        name = config_path or "(config)"
        report.add(name, "config", None, [Problem(name, str(err).removeprefix(f"{name}: "))])
        return None
    if source is None:
        return build_config(default_settings(), None, "")
    report.config_source = source
    config, problems = read_config(source)
    report.add(str(source), "config", None, problems + _mail_problems(config, str(source)))
    if config is None:
        return _salvaged(report, source)
    return config


def _salvaged(report: _Report, source: Path):
    """An invalid config: the folder (and user) it names, if they can be read
    from it, over the defaults, so that its job files are still checked where
    they are; None when even that cannot be read (then nothing is checked)."""
    from run_job.config.settings import build_config, default_settings

    raw, problem = yamlfile.read_input(source, "config file")
    if problem is not None:
        return None
    loaded = yamlfile.load_bytes(raw, str(source))
    data = {} if loaded.data is None and not loaded.problems else loaded.data
    if not isinstance(data, dict):
        return None
    settings = default_settings()
    for key in ("job_directory", "user"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and value and "\n" not in value):
            return None
        if value is not None:
            settings[key] = str(source.parent / value) if key == "job_directory" else value
    if data.get("default_job_config"):
        report.notes.append(f"{source}: note: the config is invalid, so its default_job_config was not applied: "
                            "job files were checked without it")
    return build_config(settings, None, "")


def collect(config_path: str | None, targets: list[str], keep_valid: bool = True) -> _Report:
    report = _Report(keep_valid)
    config = _load_config_for(report, config_path)
    if config is None:
        if not targets:
            name = report.files[-1]["file"] if report.files else "(config)"
            report.notes.append(f"{name}: note: job files not checked: the config is invalid (it does not say "
                                "where they are); fix it and run --validate again")
            report.jobs_skipped = True
            return report
        from run_job.config.settings import build_config, default_settings

        config = build_config(default_settings(), None, "")
    if not targets:
        _add_scan(report, config)
        _hash_notes(report, config)
        return report
    for target in targets:
        try:
            _check_target(report, config, target)
        except OSError as err:  # a name too long for the file system, a loop of links...
            from run_job.security import reason

            report.add(target, "job", None, [Problem(target, f"cannot examine it: {reason(err)}")])
    _hash_notes(report, config)
    return report


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system: not a file here
        return False


def _check_target(report: _Report, config, target: str) -> None:
    path = Path(target)
    is_path = os.sep in target or target.endswith((".yaml", ".yml")) or _exists(path)
    if is_path and path.is_dir():
        _add_scan(report, config, path)
    elif is_path:
        if not path.exists():
            report.add(target, "job", None, [Problem(target, "no such file")])
            return
        if report.config_source is not None and os.path.samefile(path, report.config_source):
            return  # the global config: already checked
        # read once, never blocking, never more than the limit: a FIFO,
        # /dev/zero or a folder given here is one problem
        raw, problem = yamlfile.read_input(path, "job or config file")
        if problem is not None:
            report.add(target, "job", None, [problem])
            return
        if _looks_like_config(raw, path):
            config_file, problems = read_config(path.absolute(), raw=raw)
            report.add(target, "config", None, problems + _mail_problems(config_file, target))
            return
        stem = path.name[:-5] if path.name.endswith(".yaml") else path.stem
        slug = stem if is_slug(stem) else None
        if slug is None or not path.name.endswith(".yaml"):
            report.notes.append(f"{target}: note: the name is not <slug>.yaml (slug matching "
                                "^[A-Za-z0-9][A-Za-z0-9_-]*$, at most 200 characters); run-job would not "
                                "load it from the job directory")
        job, problems = check_job_file(config, path, raw=raw) if slug else _check_unnamed(config, path, raw)
        report.add(target, "job", slug, problems)
        if job is not None:
            report.add_job(target, job)
    else:
        try:
            file = job_path(config, target)
        except ConfigError as err:
            report.add(target, "job", None, [Problem(target, str(err))])
            return
        if not file.exists():
            report.add(str(file), "job", target, [Problem(str(file), f"no such job '{target}' in "
                                                                     f"{config.job_directory}")])
            return
        job, problems = check_job_file(config, file)
        report.add(str(file), "job", target, problems)
        if job is not None:
            report.add_job(str(file), job)


def _hash_notes(report: _Report, config) -> None:
    """Every hashed schedule as this host expands it, and a warning when more
    than a tenth of the hashed jobs start in the same minute of the day."""
    from run_job.config.schedule import default_seed

    seed = config.hash_seed or default_seed()
    where = f"with hash_seed {seed!r}" if config.hash_seed else "on this host"
    notes, crowding = hash_report([(file, job) for file, job in report.jobs], seed)
    report.notes.extend(f"{file}: note: {key} \"{written}\" runs at \"{concrete}\" {where}"
                        for file, key, written, concrete in notes)
    report.warnings.extend(crowding)
    for file, job in report.jobs:
        if job.timezone and job.schedule and not job.is_service:
            report.notes.append(_zone_note(file, job, seed))


def _zone_note(file: str, job, seed: str) -> str:
    """How a job with its own time zone is scheduled on this host's clock."""
    from zoneinfo import ZoneInfo

    from run_job import clock
    from run_job.config.schedule import expand, host_zone
    from run_job.config.zones import host_schedules

    zone = host_zone()
    concrete = expand(job.schedule, seed, job.slug)
    entries = host_schedules(concrete, ZoneInfo(job.timezone), zone, clock.now().astimezone(zone).year)
    if entries is None:
        return (f"{file}: note: schedule \"{job.schedule}\" in {job.timezone}: that zone keeps this"
                " host's clock all year; one plain entry")
    shown = "; ".join(f"\"{e}\"" for e in entries)
    return (f"{file}: note: schedule \"{job.schedule}\" in {job.timezone} runs on this host's clock at"
            f" {shown} through run-job --if-due")


def hash_report(jobs: list, seed: str, share: float = 0.1) -> tuple[list, list[str]]:
    """([(file, key, schedule, expanded)], [warning]) for the hashed schedules
    of ``jobs`` [(file, Job)] (pure): a warning for every minute of the day
    in which more than ``share`` of the hashed jobs (and at least two) start."""
    from run_job.config.schedule import expand, has_hash, start_minutes

    notes = []
    starts: dict[int, list[str]] = {}
    hashed = 0
    for file, job in jobs:
        pairs = [("schedule", job.schedule)]
        if job.service is not None:
            pairs = [("service.keep_alive", job.service.keep_alive)]
        for key, schedule in pairs:
            if not has_hash(schedule):
                continue
            concrete = expand(schedule, seed, job.slug)
            notes.append((file, key, schedule, concrete))
            if job.disabled:
                continue
            hashed += 1
            try:
                minutes = start_minutes(concrete)
            except ValueError:
                continue
            for minute in minutes:
                starts.setdefault(minute, []).append(job.slug)
    warnings = []
    crowded = sorted(((len(slugs), minute) for minute, slugs in starts.items()
                      if len(slugs) >= 2 and len(slugs) > share * hashed), reverse=True)
    for count, minute in crowded[:3]:
        slugs = sorted(starts[minute])
        names = ", ".join(slugs[:5]) + (f" and {len(slugs) - 5} more" if len(slugs) > 5 else "")
        warnings.append(f"warning: {count} of {hashed} jobs with hashed schedules start at"
                        f" {minute // 60:02d}:{minute % 60:02d} ({names}); more than a tenth of"
                        " them in one minute: give them wider H ranges, or other schedules")
    return notes, warnings


def _mail_problems(config, name: str) -> list[Problem]:
    """What would keep failure mail from logging in (checked now, not when a run fails)."""
    if config is None or (config.mail.password_file is None and not config.mail.username):
        return []  # no SMTP login: nothing to check (and smtplib stays unimported)
    from run_job.alerts.mail import password_file_problem

    problem = password_file_problem(config.mail, config.user)
    if problem is None:
        return []
    for key in ("mail.password_file", "mail"):  # the key goes in the key path, not twice
        if problem.startswith((key + " ", key + ": ")):
            return [Problem(name, problem[len(key):].lstrip(": "), key_path=key)]
    return [Problem(name, problem)]


def _host_notes(report: _Report, notes_for: Callable[[list], list[str]] | None) -> None:
    """Notes (not errors: a config repo's CI validates on another machine) on
    what this host could not do for the valid jobs; ``notes_for(jobs)`` is
    given by the command line (the limits' host check lives with the runs)."""
    if notes_for is None:
        return
    report.notes.extend(notes_for([job for _file, job in report.jobs]))


def config_only_keys() -> frozenset[str]:
    """Keys only a global config has: the config schema's, less the job schema's."""
    from run_job.config.schema import load_schema

    return frozenset(load_schema("config")["properties"]) - frozenset(load_schema("job")["properties"])


def _looks_like_config(raw: bytes, path: Path) -> bool:
    """A named file with global config keys and no ``command`` is validated as a config."""
    data = yamlfile.load_bytes(raw, str(path)).data
    return isinstance(data, dict) and "command" not in data and bool(config_only_keys() & set(data))


def _check_unnamed(config, path: Path, raw: bytes):
    """Validate the content of a file whose name is not a slug (e.g. job.example.yaml)."""
    renamed = path.with_name("unnamed-job.yaml")
    job, problems = check_job_file(config, renamed, raw=raw)
    fixed = [Problem(str(path), p.message, p.line, p.column, p.key_path) for p in problems]
    return job, fixed


def main(config_path: str | None, targets: list[str], as_json: bool = False,
         host_notes: Callable[[list], list[str]] | None = None) -> int:
    report = collect(config_path, list(targets), keep_valid=as_json)
    _host_notes(report, host_notes)
    counts = report.counts()
    if as_json:
        document = {
            "valid": report.valid,
            "files": [{k: v for k, v in f.items() if not k.startswith("_")} for f in report.files],
            "ignored": report.ignored,
            "notes": report.notes,
            "warnings": report.warnings,
            "summary": counts,
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if report.valid else 1
    out = sys.stdout
    for entry in report.files:
        for problem in entry["_problems"]:
            out.write(problem.render() + "\n")
    for note in report.notes:
        out.write(printable(note) + "\n")
    for warning in report.warnings:
        out.write(printable(warning) + "\n")
    for name in report.ignored:
        out.write(f"{printable(name)}: ignored: not a job file (job files are <slug>.yaml; dot files, .yml and "
                  "backups are skipped)\n")
    folders = sum(1 for f in report.files if f["kind"] == "folder" and not f["valid"])
    out.write(summary(counts, folders) + "\n")
    return 0 if report.valid else 1
