"""The JSON Schemas: well-formed, described, shipped, and the fast path agrees.

``schema._accepts`` is a fast acceptor used before jsonschema; it must never
accept a document that jsonschema rejects. The table below throws many shapes
of values at every key of both schemas and compares.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from run_job.config.schema import _accepts, load_schema, schema_dir

SCHEMAS = ("job", "config", "validate")
SAMPLES = [None, True, False, 0, 1, -1, 1.5, 0.005, 10 ** 12, "", "x", "10s", "1.5m", "90", "10 minutes",
           "TERM", "SIGHUP", "term", "*/5 * * * *", "@daily", "/abs/path", "rel/path", "a@b.org", "1G",
           "local", "slurm", [], ["x"], ["--mem=1G", 2], [1, 2], {}, {"a": 1}, {"A": "b"}, {"A=B": "c"},
           {"to_address": "a@b"}, {"to_address": ["a@b", "c@d"]}, {"to_address": []},
           {"partition": "debug", "time": "10"}, {"options": ["--mem=1G"]}, {"stop_signal": 99},
           {"stop_signal": "USR1", "keep_alive": "* * * * *"}, {"bogus": 1}, {"smtp_port": 0},
           {"smtp_port": 25, "timeout": "5s"}, {"MAILTO": "x"}, {"1BAD": "x"}, {"version": 1}]


def _walk(schema: dict):
    if isinstance(schema, dict):
        for key, sub in schema.get("properties", {}).items():
            yield key, sub
            yield from _walk(sub)
        for keyword in ("items", "additionalProperties"):
            if isinstance(schema.get(keyword), dict):
                yield from _walk(schema[keyword])
        for sub in schema.get("oneOf", []):
            yield from _walk(sub)
        for sub in schema.get("definitions", {}).values():
            yield from _walk(sub)


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_draft7_and_every_key_is_described(name: str) -> None:
    schema = load_schema(name)
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema.get("additionalProperties") is False
    for key, sub in _walk(schema):
        assert sub.get("description"), f"{name}: key {key!r} has no description"


def test_schemas_are_found_beside_the_package() -> None:
    assert (schema_dir() / "job.schema.json").is_file()


@pytest.mark.parametrize("name", ["job", "config"])
def test_fast_acceptor_never_accepts_what_jsonschema_refuses(name: str) -> None:
    schema = load_schema(name)
    validator = Draft7Validator(schema)
    base = {"command": "/bin/true"} if name == "job" else {}
    checked = 0
    for key in schema["properties"]:
        for value in SAMPLES:
            document = dict(base, **{key: value})
            if _accepts(schema, document):
                assert validator.is_valid(document), (key, value)
            checked += 1
    for left, right in itertools.combinations(SAMPLES[:12], 2):
        document = dict(base, timeout=left, name=right) if name == "job" else dict(keep_runs=left, user=right)
        if _accepts(schema, document):
            assert validator.is_valid(document)
    assert checked > 500


def test_fast_acceptor_accepts_the_good_corpus() -> None:
    """The fast path is taken for ordinary valid files (else it would be no faster)."""
    schema = load_schema("job")
    good = Path(__file__).resolve().parents[1] / "data" / "jobs" / "good"
    for path in good.glob("*.yaml"):
        assert _accepts(schema, yaml.safe_load(path.read_text())), path.name


def test_status_schema_is_valid_draft7_and_described() -> None:
    schema = load_schema("status")
    Draft7Validator.check_schema(schema)
    for definition in schema["definitions"].values():
        for key, sub in _walk(definition):
            assert sub.get("description"), f"status: key {key!r} has no description"


def test_config_only_keys_come_from_the_schemas():
    """--validate tells a config from a job file by keys only a config has: every
    config key the job schema does not know, new ones included."""
    from run_job.config.validate import config_only_keys

    keys = config_only_keys()
    for key in ("keep_days", "max_output", "metrics", "web", "hash_seed", "job_directory"):
        assert key in keys
    assert "command" not in keys and "timeout" not in keys and "slurm" not in keys  # job keys too
