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

from run_job.config.settings import locate_config, read_config
from run_job.errors import ConfigError, Problem
from run_job.config.jobs import ScanResult, check_job_file, classify, is_slug, job_path, scan_job_directory


class _Report:
    def __init__(self) -> None:
        self.files: list[dict] = []
        self.ignored: list[str] = []
        self.notes: list[str] = []
        self.jobs: list = []  # valid jobs, for the notes on this host

    def add(self, file: str, kind: str, job: str | None, problems: list[Problem]) -> None:
        self.files.append({"file": file, "kind": kind, "job": job, "valid": not problems,
                           "errors": [p.as_json() for p in problems], "_problems": problems})

    @property
    def valid(self) -> bool:
        return all(f["valid"] for f in self.files)


def _add_scan(report: _Report, scan: ScanResult) -> None:
    report.jobs.extend(scan.jobs)
    by_file: dict[str, list[Problem]] = {}
    for problem in scan.problems:
        by_file.setdefault(problem.file, []).append(problem)
    for path in scan.checked:
        name = str(path)
        slug = path.name[:-5] if classify(path.name) == "job" else None
        report.add(name, "job", slug, by_file.pop(name, []))
    for name, problems in by_file.items():  # folder-level problems (missing, permissions)
        report.add(name, "job", None, problems)
    for path in scan.ignored:
        if path.is_dir():
            continue
        report.ignored.append(str(path))


def _load_config_for(report: _Report, config_path: str | None):
    """The config to validate against; its own problems are part of the report."""
    from run_job.config.settings import build_config, default_settings

    try:
        source = locate_config(config_path)
    except ConfigError as err:  # a named config that is missing: a finding like any other
        name = config_path or "(config)"
        report.add(name, "config", None, [Problem(name, str(err).removeprefix(f"{name}: "))])
        return None
    if source is None:
        return build_config(default_settings(), None, "")
    config, problems = read_config(source)
    report.add(str(source), "config", None, problems)
    if config is None:  # go on with the defaults so that job files still get checked
        return build_config(default_settings(), None, "")
    return config


def collect(config_path: str | None, targets: list[str]) -> _Report:
    report = _Report()
    config = _load_config_for(report, config_path)
    if config is None:
        if not targets:
            return report  # no job directory to scan without a config
        from run_job.config.settings import build_config, default_settings

        config = build_config(default_settings(), None, "")
    if not targets:
        _add_scan(report, scan_job_directory(config))
        return report
    for target in targets:
        path = Path(target)
        if path.is_dir():
            _add_scan(report, scan_job_directory(config, path))
        elif os.sep in target or target.endswith((".yaml", ".yml")) or path.exists():
            if not path.exists():
                report.add(target, "job", None, [Problem(target, "no such file")])
                continue
            if _looks_like_config(path):
                config_file, problems = read_config(path.absolute())
                report.add(target, "config", None, problems)
                continue
            stem = path.name[:-5] if path.name.endswith(".yaml") else path.stem
            slug = stem if is_slug(stem) else None
            if slug is None or not path.name.endswith(".yaml"):
                report.notes.append(f"{target}: note: the name is not <slug>.yaml (slug matching "
                                    "^[A-Za-z0-9][A-Za-z0-9_-]*$); run-job would not load it from the job directory")
            job, problems = check_job_file(config, path, raw=None) if slug else _check_unnamed(config, path)
            report.add(target, "job", slug, problems)
            if job is not None:
                report.jobs.append(job)
        else:
            try:
                file = job_path(config, target)
            except ConfigError as err:
                report.add(target, "job", None, [Problem(target, str(err))])
                continue
            if not file.exists():
                report.add(str(file), "job", target, [Problem(str(file), f"no such job '{target}' in "
                                                                         f"{config.job_directory}")])
                continue
            job, problems = check_job_file(config, file)
            report.add(str(file), "job", target, problems)
            if job is not None:
                report.jobs.append(job)
    return report


def _note_limits(report: _Report) -> None:
    """A note (not an error: a config repo's CI validates on another machine)
    for each valid job whose memory/tasks limits this host could not enforce;
    run-job would refuse to run it here (exit 125)."""
    limited = [job for job in report.jobs if job.limits is not None
               and (job.limits.memory or job.limits.tasks)]
    if not limited:
        return
    from run_job.run.confine import host_problem
    from run_job.run.limits import needed_controllers

    found: dict[tuple, str | None] = {}
    for job in limited:
        controllers = needed_controllers(job.limits)
        if controllers not in found:
            found[controllers] = host_problem(controllers)
        problem = found[controllers]
        if problem:
            report.notes.append(f"{job.path}: note: on this host, {problem}")


_CONFIG_ONLY_KEYS = {"job_directory", "output_directory", "state_directory", "run_directory", "output_crontab",
                     "runner_path", "service_runner_path", "cron_template", "default_job_config", "user",
                     "logging", "keep_runs", "history_length", "mail", "hooks_directory", "cron_environment"}


def _looks_like_config(path: Path) -> bool:
    """A named file with global config keys and no ``command`` is validated as a config."""
    from run_job.config import yamlfile

    try:
        raw = path.read_bytes()[: yamlfile.MAX_BYTES + 1]
    except OSError:
        return False
    data = yamlfile.load_bytes(raw, str(path)).data
    return isinstance(data, dict) and "command" not in data and bool(_CONFIG_ONLY_KEYS & set(data))


def _check_unnamed(config, path: Path):
    """Validate the content of a file whose name is not a slug (e.g. job.example.yaml)."""
    from run_job.config import yamlfile

    try:
        raw = path.read_bytes()[: yamlfile.MAX_BYTES + 1]
    except OSError as err:
        return None, [Problem(str(path), f"cannot read the file: {err.strerror}")]
    renamed = path.with_name("unnamed-job.yaml")
    job, problems = check_job_file(config, renamed, raw=raw)
    fixed = [Problem(str(path), p.message, p.line, p.column, p.key_path) for p in problems]
    return job, fixed


def main(config_path: str | None, targets: list[str], as_json: bool = False) -> int:
    report = collect(config_path, list(targets))
    _note_limits(report)
    checked = len(report.files)
    invalid = sum(1 for f in report.files if not f["valid"])
    errors = sum(len(f["errors"]) for f in report.files)
    if as_json:
        document = {
            "valid": report.valid,
            "files": [{k: v for k, v in f.items() if not k.startswith("_")} for f in report.files],
            "ignored": report.ignored,
            "summary": {"checked": checked, "invalid": invalid, "errors": errors},
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if report.valid else 1
    out = sys.stdout
    for entry in report.files:
        for problem in entry["_problems"]:
            out.write(problem.render() + "\n")
    for note in report.notes:
        out.write(note + "\n")
    for name in report.ignored:
        out.write(f"{name}: ignored: not a job file (job files are <slug>.yaml; dot files, .yml and "
                  "backups are skipped)\n")
    if report.valid:
        out.write(f"OK: {checked} file{'s' if checked != 1 else ''} valid\n")
        return 0
    out.write(f"FAILED: {invalid} of {checked} file{'s' if checked != 1 else ''} invalid, "
              f"{errors} error{'s' if errors != 1 else ''}\n")
    return 1
