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
from run_job.config.yamlfile import Loaded, key_path

SCHEMA_VERSION = "1"  # bump when a schema changes meaning (invalidates caches)


def schema_dir() -> Path:
    """``run_job/schemas`` when installed; the repo's ``schemas/`` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "schemas"
    if (installed / "job.schema.json").is_file():
        return installed
    return package.parent / "schemas"


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


def _accepts(schema: Any, value: Any) -> bool:
    """A fast, conservative check for the subset of JSON Schema our schemas use.

    True only when ``value`` is certainly valid; False means "ask jsonschema",
    which stays the authority on every error and its wording. Any keyword this
    function does not know makes it answer False. It exists because jsonschema
    costs most of the time of validating a large job directory. The schema is
    compiled into nested checks once (``_compile``).
    """
    hit = _ACCEPTORS.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, _compile(schema))  # the schema is kept: its id stays its own
        _ACCEPTORS[id(schema)] = hit
    return hit[1](value)


_ACCEPTORS: dict[int, tuple[Any, Any]] = {}


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


def _compile(schema: Any) -> Any:
    """``value -> bool`` deciding what ``_accepts(schema, value)`` decides."""
    if schema is True:
        return _always
    if not isinstance(schema, dict):
        return _never
    checks = []
    for keyword, expected in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        maker = _CHECKS.get(keyword)
        if maker is None:
            return _never
        checks.append(maker(expected, schema))
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    checks_t = tuple(checks)

    def every(value: Any) -> bool:
        for check in checks_t:
            if not check(value):
                return False
        return True
    return every


def _type_check(expected: Any, _schema: dict) -> Any:
    names = expected if isinstance(expected, list) else (expected,)
    plain = tuple({"string": str, "object": dict, "array": list}[name] for name in names
                  if name in ("string", "object", "array"))
    boolean, null = "boolean" in names, "null" in names
    integer, number = "integer" in names, "number" in names

    def check(value: Any) -> bool:
        if isinstance(value, plain):
            return True
        if isinstance(value, bool):
            return boolean
        if value is None:
            return null
        if isinstance(value, int):
            return integer or number
        if isinstance(value, float):
            return number
        return False
    return check


def _properties_check(expected: dict, _schema: dict) -> Any:
    subs = {key: _compile(sub) for key, sub in expected.items()}

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, item in value.items():
            sub = subs.get(key)
            if sub is not None and not sub(item):
                return False
        return True
    return check


def _additional_check(expected: Any, schema: dict) -> Any:
    known = schema.get("properties", {})
    sub = _never if expected is False else _compile(expected)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key, item in value.items():
            if key not in known and not sub(item):
                return False
        return True
    return check


def _pattern_check(expected: str, _schema: dict) -> Any:
    search = _compiled(expected).search
    return lambda value: not isinstance(value, str) or search(value) is not None


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> Any:
    import re

    return re.compile(pattern)


def _one_of_check(expected: list, _schema: dict) -> Any:
    """oneOf needs "exactly one": only trust branches whose False is a real no."""
    if not all(_decidable(sub) for sub in expected):
        return _never
    subs = tuple(_compile(sub) for sub in expected)
    return lambda value: sum(1 for sub in subs if sub(value)) == 1


def _decidable(schema: Any) -> bool:
    return isinstance(schema, dict) and set(schema) <= {"type", "description", "minLength", "minimum",
                                                        "maximum", "exclusiveMinimum", "pattern", "items",
                                                        "minItems"}


def _items_check(expected: Any, _schema: dict) -> Any:
    sub = _compile(expected)
    return lambda value: not isinstance(value, list) or all(sub(item) for item in value)


def _bound(test: Any) -> Any:
    def make(expected: Any, _schema: dict) -> Any:
        return lambda value: (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or test(value, expected))
    return make


def _enum_check(expected: list, _schema: dict) -> Any:
    return lambda value: any(value == e and type(value) is type(e) for e in expected)


def _property_names_check(expected: Any, _schema: dict) -> Any:
    sub = _compile(expected)
    return lambda value: not isinstance(value, dict) or all(sub(k) for k in value)


_CHECKS = {
    "type": _type_check,
    "properties": _properties_check,
    "additionalProperties": _additional_check,
    "required": lambda expected, _s: lambda value: not isinstance(value, dict) or all(
        k in value for k in expected),
    "enum": _enum_check,
    "pattern": _pattern_check,
    "minLength": lambda expected, _s: lambda value: not isinstance(value, str) or len(value) >= expected,
    "maxLength": lambda expected, _s: lambda value: not isinstance(value, str) or len(value) <= expected,
    "minItems": lambda expected, _s: lambda value: not isinstance(value, list) or len(value) >= expected,
    "uniqueItems": lambda expected, _s: lambda value: not expected or not isinstance(value, list) or len(
        {repr(v) for v in value}) == len(value),
    "items": _items_check,
    "oneOf": _one_of_check,
    "minimum": _bound(lambda v, e: v >= e),
    "maximum": _bound(lambda v, e: v <= e),
    "exclusiveMinimum": _bound(lambda v, e: v > e),
    "propertyNames": _property_names_check,
}
_ANNOTATIONS = {"description", "title", "$schema", "$id", "definitions"}


def problems_from_schema(name: str, data: Any, loaded: Loaded, filename: str,
                         base_path: tuple = ()) -> list[Problem]:
    """Validate ``data`` against schema ``name``; every error as a Problem."""
    if _accepts(load_schema(name), data):
        return []
    out: list[Problem] = []
    for error in validator(name).iter_errors(data):
        path = base_path + tuple(error.absolute_path)
        out.extend(word_error(error, path, loaded, filename))
    out.sort(key=lambda p: (p.line or 0, p.column or 0, p.key_path))
    return out


_UNITS = "write a number with a unit s, m, h or d, such as '10s', '1.5m' or '2h'"
_PARTITION = "write one partition name of letters, digits, '_', '.' and '-'"
_COMMAND = "write one command line as a string, or a list of command lines (none of them empty)"
_SIGNAL = "write a signal name such as TERM, HUP or USR1 (SIG is optional) or a number from 1 to 64"
# What a value of each key is, and how to write one: the message of a oneOf,
# pattern, type or bound error, instead of the schema's description (which
# says what the key does, at length). Keys are dotted paths without list
# indices; job keys count under default_job_config too.
_WRITE = {
    "user": ("a user name", "write a login name such as process-control (lower-case letters, digits, '_', "
                            "'.', '-')"),
    "keep_days": ("a number of days", "write a number greater than 0, such as 7 or 0.5"),
    "max_output": ("a size", "write bytes as a number (1000000) or a size such as '500M' or '1G'"),
    "mail.timeout": ("a mail timeout", "write seconds as a number (10) or a duration such as '10s' or '1m'"),
    "slurm.partition": ("a partition", _PARTITION),
    "slurm.service_partition": ("a partition", _PARTITION),
    "slurm.unreachable_timeout": ("a duration", _UNITS),
    "command": ("a command", _COMMAND),
    "slow_start_command": ("a command", _COMMAND),
    "timeout": ("a timeout", "write minutes as a number (30) or a duration such as '90s', '15m', '2h'"),
    "tag": ("a tag", "write one tag as a string, or a list of tags"),
    "failmail.to_address": ("a mail address", "write one address, or a list of addresses"),
    "slurm.time": ("a Slurm time limit", "write minutes (30) or Slurm's MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS, "
                                         "quoted: \"1:30:00\""),
    "service.stop_signal": ("a signal", _SIGNAL),
    "service.reload_signal": ("a signal", _SIGNAL),
    "service.init_command": ("a command", _COMMAND),
    "kill_grace": ("a duration", _UNITS),
}
_WORDED = {"oneOf", "anyOf", "pattern", "type", "minimum", "maximum", "exclusiveMinimum", "minLength", "minItems"}


def _what_to_write(path: tuple) -> tuple[str, str] | None:
    keys = [part for part in path if isinstance(part, str)]
    if keys[:1] == ["default_job_config"]:
        keys = keys[1:]
    return _WRITE.get(".".join(keys))


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _summary(schema: Any) -> str:
    """The schema's description when it is short (one line of a message), else ""."""
    desc = _describe(schema)
    return desc if len(desc) <= 80 else ""


def word_error(error: Any, path: tuple, loaded: Loaded, filename: str) -> list[Problem]:
    """One jsonschema error as Problems a person can act on."""
    kind = error.validator
    line, column = loaded.position(path)
    where = key_path(path)
    write = _what_to_write(path) if kind in _WORDED else None
    if write is not None and "propertyNames" not in error.relative_schema_path:
        what, how = write
        value = error.instance
        if how is _UNITS and isinstance(value, (int, float)) and not isinstance(value, bool):
            how = f"write '{_number(value)}s' or '{_number(value)}m': a bare number is ambiguous here"
        message = f"{_short(value)} is not {what}: {how}" + _bool_hint(loaded, path)
        return [Problem(filename, message, line, column, where)]
    if "propertyNames" in error.relative_schema_path and isinstance(error.instance, str):
        bad = error.instance
        kline, kcolumn = loaded.position(path + (bad,))
        enum = error.validator_value if kind == "enum" else None
        if enum:
            close = difflib.get_close_matches(bad, [str(e) for e in enum], n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(map(str, enum))}"
            return [Problem(filename, f"unknown key '{bad}'{hint}", kline, kcolumn, key_path(path + (bad,)))]
        return [Problem(filename, f"'{bad}' is not allowed as a name here: {error.message}", kline, kcolumn,
                        key_path(path + (bad,)))]
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
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        wanted = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "true or false",
                  "integer": "a whole number", "number": "a number"}.get(wanted, wanted)
        message = (f"expected {wanted}, got {_json_type(error.instance)} {_short(error.instance)}"
                   + _bool_hint(loaded, path))
        return [Problem(filename, message, line, column, where)]
    if kind in ("oneOf", "anyOf"):
        desc = _summary(error.schema)
        message = f"{_short(error.instance)} is not valid here"
        if desc:
            message += f": {desc}"
        return [Problem(filename, message + _bool_hint(loaded, path), line, column, where)]
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return [Problem(filename, f"{_short(error.instance)} is not one of: {choices}" + _bool_hint(loaded, path),
                        line, column, where)]
    if kind == "pattern":
        desc = _summary(error.schema)
        return [Problem(filename, f"{_short(error.instance)} is not valid" + (f": {desc}" if desc else ""),
                        line, column, where)]
    return [Problem(filename, error.message, line, column, where)]
