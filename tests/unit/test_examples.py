"""Every bundled example validates: configs as configs, job files as jobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from run_job.config.settings import build_config, default_settings, read_config
from run_job.config.jobs import check_job_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
JOBS = sorted(p for p in EXAMPLES.glob("*/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_is_valid(path: Path) -> None:
    config, problems = read_config(path)
    assert problems == [], "\n".join(p.render() for p in problems)
    assert config is not None and config.job_directory.is_absolute()


@pytest.mark.parametrize("path", JOBS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_job_is_valid(path: Path, tmp_path: Path) -> None:
    settings = default_settings(uid=os.geteuid())
    settings["job_directory"] = str(path.parent)
    job, problems = check_job_file(build_config(settings, None, ""), path)
    assert problems == [], "\n".join(p.render() for p in problems)
    assert job is not None


def test_examples_cover_every_job_key() -> None:
    import yaml

    from run_job.config.schema import load_schema

    seen: set[str] = set()
    for path in JOBS:
        seen |= set(yaml.safe_load(path.read_text()))
    missing = set(load_schema("job")["properties"]) - seen
    assert not missing, f"no example uses {sorted(missing)}"
