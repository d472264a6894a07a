"""The JSON Schemas: found in the installed package, turned into Problems.

The schemas in ``schemas/`` are the structure of config and job files, for
editors, for a config repo's CI and for us. This module loads them (once),
validates a loaded document and words each error for a person: which key,
where in the file, what to write instead ("did you mean …?", quote ``on``…).
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from run_job.errors import Problem
from run_job.yamlfile import Loaded, key_path

SCHEMA_VERSION = "1"  # bump when a schema changes meaning (invalidates caches)


def schema_dir() -> Path:
    """``run_job/schemas`` when installed; the repo's ``schemas/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "schemas"
    if (installed / "job.schema.json").is_file():
        return installed
    return here.parent / "schemas"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    with open(schema_dir() / f"{name}.schema.json", encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=None)
def validator(name: str) -> Any:
    from jsonschema import Draft7Validator

    return Draft7Validator(load_schema(name))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bool_hint(loaded: Loaded, path: tuple) -> str:
    word = loaded.bool_words.get(path)
    if word is not None:
        return f"; YAML reads the unquoted word '{word}' as a boolean: quote it (\"{word}\") if you mean text"
    return ""


def _describe(schema: Any) -> str:
    if isinstance(schema, dict):
        return schema.get("description", "")
    return ""


def problems_from_schema(name: str, data: Any, loaded: Loaded, filename: str,
                         base_path: tuple = ()) -> list[Problem]:
    """Validate ``data`` against schema ``name``; every error as a Problem."""
    out: list[Problem] = []
    for error in validator(name).iter_errors(data):
        path = base_path + tuple(error.absolute_path)
        out.extend(word_error(error, path, loaded, filename))
    out.sort(key=lambda p: (p.line or 0, p.column or 0, p.key_path))
    return out


def word_error(error: Any, path: tuple, loaded: Loaded, filename: str) -> list[Problem]:
    """One jsonschema error as Problems a person can act on."""
    kind = error.validator
    line, column = loaded.position(path)
    where = key_path(path)
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        instance = error.instance if isinstance(error.instance, dict) else {}
        problems = []
        for key in instance:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
            kline, kcolumn = loaded.position(path + (key,))
            problems.append(Problem(filename, f"unknown key '{key}'{hint}", kline, kcolumn, key_path(path + (key,))))
        return problems
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Problem(filename, f"missing required key '{missing}'", line, column, where)]
    if kind == "propertyNames":
        close = []
        enum = error.schema.get("propertyNames", {}).get("enum") if isinstance(error.schema, dict) else None
        bad = error.instance if isinstance(error.instance, str) else None
        for ctx in error.context or []:
            bad = ctx.instance
        if enum and isinstance(bad, str):
            close = difflib.get_close_matches(bad, enum, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else "; it must be a job key"
            return [Problem(filename, f"unknown key '{bad}'{hint}", *loaded.position(path + (bad,)),
                            key_path(path + (bad,)))]
        return [Problem(filename, f"'{bad}' is not allowed as a name here", *loaded.position(path + (bad,)),
                        key_path(path + (bad,)))]
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        wanted = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "true or false",
                  "integer": "a whole number", "number": "a number"}.get(wanted, wanted)
        message = (f"expected {wanted}, got {_json_type(error.instance)} {_short(error.instance)}"
                   + _bool_hint(loaded, path))
        return [Problem(filename, message, line, column, where)]
    if kind in ("oneOf", "anyOf"):
        desc = _describe(error.schema)
        message = f"{_short(error.instance)} is not valid here"
        if desc:
            message += f": {desc}"
        return [Problem(filename, message + _bool_hint(loaded, path), line, column, where)]
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return [Problem(filename, f"{_short(error.instance)} is not one of: {choices}" + _bool_hint(loaded, path),
                        line, column, where)]
    if kind == "pattern":
        desc = _describe(error.schema)
        return [Problem(filename, f"{_short(error.instance)} is not valid" + (f": {desc}" if desc else ""),
                        line, column, where)]
    return [Problem(filename, error.message, line, column, where)]
