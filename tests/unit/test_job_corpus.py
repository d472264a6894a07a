"""Positive and negative job-file corpora: drop a file in a folder, get a case.

``tests/data/jobs/good/*.yaml`` must validate. Each file of
``tests/data/jobs/bad/`` names what its error must say: ``# expect: <text>``
lines at its top, or, for files that cannot hold a comment (binary, empty), a
sidecar ``<file>.expect`` with one expected text a line. Every expected text
must appear in the rendered problems (``file:line: key.path: message``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from run_job.config.settings import build_config, default_settings
from run_job.config.jobs import check_job_file

CORPUS = Path(__file__).resolve().parents[1] / "data" / "jobs"


def _config(tmp_path: Path):
    settings = default_settings(uid=os.geteuid())
    settings.update(job_directory=str(tmp_path), output_directory=str(tmp_path / "o"),
                    state_directory=str(tmp_path / "s"), run_directory=str(tmp_path / "r"))
    return build_config(settings, None, "")


def _expectations(path: Path) -> list[str]:
    sidecar = path.with_name(path.name + ".expect")
    if sidecar.exists():
        return [line for line in sidecar.read_text().splitlines() if line.strip()]
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    return [line.split("# expect:", 1)[1].strip() for line in lines if line.startswith("# expect:")]


@pytest.mark.parametrize("path", sorted((CORPUS / "good").glob("*.yaml")), ids=lambda p: p.name)
def test_good_file_validates(path: Path, tmp_path: Path) -> None:
    job, problems = check_job_file(_config(tmp_path), path)
    assert problems == []
    assert job is not None and job.slug == path.stem and job.commands


@pytest.mark.parametrize("path", sorted((CORPUS / "bad").glob("*.yaml")), ids=lambda p: p.name)
def test_bad_file_is_refused_with_its_message(path: Path, tmp_path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} names no expected message"
    started = time.monotonic()
    job, problems = check_job_file(_config(tmp_path), path)
    elapsed = time.monotonic() - started
    assert job is None and problems
    rendered = "\n".join(p.render() for p in problems)
    for text in expected:
        assert text in rendered, f"{text!r} not in:\n{rendered}"
    for problem in problems:
        assert problem.file == str(path)
    assert elapsed < 1.0


# Our own words, whichever parser notices first (libyaml after 0.2.5 has a
# nesting limit of its own, and its scanner reads ahead of our depth walk).
TOO_DEEP = "the document is nested more than 64 levels deep; a job file is a flat mapping"


@pytest.mark.parametrize("content,expected", [
    (b"command: /bin/true\n" + b"x" * (11 * 1024 * 1024), "more than 1,048,576 is refused"),
    (b"\xff\xfe\x00binary", "NUL byte"),
    (b"command: /bin/true\nname: \xc3\x28\n", "not valid UTF-8"),
    (b"", "the file is empty"),
    (b"# only a comment\n", "the file is empty"),
    (b"[1, 2, 3]\n", "not a list"),
    (b"42\n", "not a number"),
    (b"command: /bin/true\nx: " + b"[" * 200_000 + b"]" * 200_000 + b"\n", TOO_DEEP),
    (b"command: /bin/true\nx: " + b"{a: " * 5_000 + b"}" * 5_000 + b"\n", TOO_DEEP),
    (b"- " * 200_000 + b"y\n", TOO_DEEP),
    (b"command: /bin/true\nbell: \x07\n", "control character"),
], ids=["10MB", "binary", "bad-utf8", "empty", "comment-only", "list", "scalar", "deep-flow", "deep-flow-map",
        "deep-block", "control-char"])
def test_hostile_input_gets_one_clear_error_fast(content: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    job, problems = check_job_file(_config(tmp_path), path)
    assert time.monotonic() - started < 1.0
    assert job is None
    assert len(problems) == 1, problems
    assert expected in problems[0].render()


def test_libyaml_nesting_limit_is_worded_as_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever libyaml the machine has: its nesting error, as the newest one words it, becomes ours."""
    import yaml

    def parse(*args, **kwargs):
        raise yaml.scanner.ScannerError("while increasing flow level", None, "exceeded maximum nesting depth", None)
        yield  # pragma: no cover - a generator, like yaml.parse

    monkeypatch.setattr(yaml, "parse", parse)
    path = tmp_path / "deep.yaml"
    path.write_bytes(b"command: /bin/true\nx: " + b"[" * 2_000 + b"]" * 2_000 + b"\n")
    job, problems = check_job_file(_config(tmp_path), path)
    assert job is None
    assert [p.message for p in problems] == [TOO_DEEP]
