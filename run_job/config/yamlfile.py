"""Safe YAML loading for config and job files, with positions and hints.

Owns: the size limit, strict UTF-8, duplicate keys, the alias and nesting
budget (a billion-laughs file or a 100,000-deep list is one clear error, not a
hang or a crash), the line and column of every key path, and hints for YAML's
pitfalls (an unquoted ``*/5 * * * *`` is an alias; ``on``/``yes`` are booleans).
Everything it finds is a ``Problem``; it never lets a YAML exception escape.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from run_job.errors import Problem

try:  # libyaml: the C parser; the pure-Python one is the fallback
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 1024 * 1024  # as security.CONFIG_LIMIT
MAX_NODES = 20_000
MAX_DEPTH = 64
_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n", "true", "false"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_INF = float("inf")

Path_ = tuple  # a key path: ("slurm", "options", 2)


class Loaded:
    """A parsed document with where each key stands in the file."""

    def __init__(self, data: Any, problems: list[Problem] | None = None) -> None:
        self.data = data
        self.marks: dict[Path_, tuple[int, int]] = {}  # path -> (line, column), 1-based
        self.bool_words: dict[Path_, str] = {}  # path -> the word YAML read as a boolean
        self.problems: list[Problem] = problems or []

    def position(self, path: Path_) -> tuple[int | None, int | None]:
        """Line and column of ``path``, or of its nearest known parent."""
        path = tuple(path)
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), (None, None))


def key_path(path: Path_) -> str:
    """``("slurm", "options", 2)`` -> ``slurm.options[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Budget(Exception):
    pass


def _suspicious_depth(text: str) -> bool:
    """A cheap upper bound of the nesting depth is large (checked properly then)."""
    bound = text.count("[") + text.count("{") + text.count("- ")
    if bound <= 500:
        return False
    return True


def _event_depth_ok(text: str) -> bool:
    """Walk the event stream (libyaml's parser does not recurse) and bound the depth."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return True


def _yaml_error_problem(filename: str, err: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    hint = ""
    lines = text.splitlines()
    source_line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    # libyaml's messages never name the tab; the line it stopped at does
    tab_there = "\t" in source_line[: len(source_line) - len(source_line.lstrip(" \t"))] or (
        mark is not None and source_line[mark.column:mark.column + 1] == "\t")
    if tab_there:
        hint = "; a tab indents this line: YAML does not allow tabs for indentation, indent with spaces"
    elif "alias" in str(context or "") or "alias" in str(problem):
        if "*" in source_line:
            hint = ('; a value starting with * is read as a YAML alias: quote the schedule, '
                    'e.g. schedule: "*/5 * * * *"')
    elif "found character '\\t'" in str(problem) or "found character '\t'" in str(problem):
        hint = "; YAML does not allow tabs for indentation: use spaces"
    elif "could not find expected ':'" in str(problem) or "mapping values are not allowed" in str(problem):
        hint = "; check the indentation and quote values that contain ': '"
    return Problem(filename, message + hint, line, column)


def _too_deep(filename: str) -> Loaded:
    return Loaded(None, problems=[Problem(
        filename, f"the document is nested more than {MAX_DEPTH} levels deep; a job file is a flat mapping")])


def _libyaml_too_deep(err: yaml.YAMLError) -> bool:
    """libyaml's own nesting limit (1000 levels, in the releases after 0.2.5).

    Its scanner reads a simple key's worth of tokens ahead, so on ``[[[[...``
    it answers before our event walk reaches MAX_DEPTH: the same finding,
    worded as ours.
    """
    return "exceeded maximum nesting depth" in str(getattr(err, "problem", None) or "")


def load_text(text: str, filename: str) -> Loaded:
    """Parse one YAML document from ``text``; problems are collected, never raised."""
    if _suspicious_depth(text):
        try:
            ok = _event_depth_ok(text)
        except yaml.YAMLError as err:
            if _libyaml_too_deep(err):
                return _too_deep(filename)
            return Loaded(None, problems=[_yaml_error_problem(filename, err, text)])
        if not ok:
            return _too_deep(filename)
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            if _libyaml_too_deep(err):
                return _too_deep(filename)
            return Loaded(None, problems=[_yaml_error_problem(filename, err, text)])
        loaded = Loaded(None)
        if node is None:
            return loaded
        builder = _Builder(loader, loaded, filename)
        try:
            loaded.data = builder.build(node, (), 0)
        except _Budget as err:
            loaded.data = None
            loaded.problems = [Problem(filename, str(err))]
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as err:
            mark = getattr(err, "problem_mark", None)
            loaded.data = None
            loaded.problems = [Problem(filename, f"YAML error: {getattr(err, 'problem', None) or err}",
                                       mark.line + 1 if mark else None, mark.column + 1 if mark else None)]
        return loaded
    finally:
        loader.dispose()


class _Builder:
    """Turns a composed node graph into Python data, recording key positions."""

    def __init__(self, loader: Any, loaded: Loaded, filename: str) -> None:
        self.loader = loader
        self.loaded = loaded
        self.filename = filename
        self.count = 0
        self.constructors = loader.yaml_constructors

    def build(self, node: Any, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Budget(f"the document expands to more than {MAX_NODES} values (aliases repeating "
                          "themselves?); a job file needs no aliases")
        if depth > MAX_DEPTH:
            raise _Budget(f"the document is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ScalarNode):
            tag = node.tag
            if tag == _STR_TAG:
                return node.value
            if tag == _BOOL_TAG and node.value.lower() in _BOOL_WORDS - {"true", "false"}:
                self.loaded.bool_words[path] = node.value
            constructor = self.constructors.get(tag)
            if constructor is None:
                raise _Budget(f"line {node.start_mark.line + 1}: unknown YAML tag {tag!r}; plain values need no tags")
            value = constructor(self.loader, node)
            if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
                raise _Budget(f"line {node.start_mark.line + 1}: {node.value!r} is not a usable"
                              " number (YAML reads it as infinity or not-a-number); write a"
                              " finite number")
            return value
        if node.tag not in (_SEQ_TAG, _MAP_TAG):
            raise _Budget(f"line {node.start_mark.line + 1}: unknown YAML tag {node.tag!r}; plain values need no tags")
        if isinstance(node, SequenceNode):
            return [self.build(child, path + (i,), depth + 1) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        raise _Budget(f"unsupported YAML node {type(node).__name__}")

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict:
        result: dict = {}
        first_line: dict = {}
        marks = self.loaded.marks
        for key_node, value_node in node.value:
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == _MERGE_TAG:
                self.loaded.problems.append(Problem(
                    self.filename, "YAML merge keys (<<) are not supported; write the keys out", line, column,
                    key_path(path)))
                continue
            if not isinstance(key_node, ScalarNode):
                self.loaded.problems.append(Problem(
                    self.filename, "a key must be a plain string, not a list or mapping", line, column, key_path(path)))
                continue
            key = self.build(key_node, path, depth + 1)
            if not isinstance(key, str):
                word = key_node.value
                if isinstance(key, bool):
                    why = f"YAML reads the unquoted key '{word}' as the boolean {key}"
                else:
                    why = f"YAML reads the unquoted key '{word}' as a {type(key).__name__}"
                self.loaded.problems.append(Problem(
                    self.filename, f"{why}; keys are strings: quote it (\"{word}\")", line, column, key_path(path)))
                continue
            if key in result:
                self.loaded.problems.append(Problem(
                    self.filename,
                    f"duplicate key '{key}' (first at line {first_line[key]}); each key may appear once",
                    line, column, key_path(path + (key,))))
                continue
            first_line[key] = line
            child = path + (key,)
            marks[child] = (line, column)
            result[key] = self.build(value_node, child, depth + 1)
        return result


def read_input(path: str | os.PathLike, what: str) -> tuple[bytes, Problem | None]:
    """The bytes of a config or job file, read as ``security.read_bounded`` does
    (no blocking open, regular files only, ``MAX_BYTES``), or the one
    Problem that says why not."""
    from run_job.security import FileTooLarge, NotRegularFile, read_bounded, reason

    try:
        return read_bounded(path, MAX_BYTES), None
    except NotRegularFile as err:
        return b"", Problem(str(path), f"{reason(err)}; a {what} is a YAML file")
    except FileTooLarge as err:
        return b"", Problem(str(path), f"the {what} is {err.size:,} bytes or more; more than {MAX_BYTES:,} "
                                       "is refused (is this the right file?)")
    except OSError as err:
        return b"", Problem(str(path), f"cannot read the {what}: {reason(err)}")


def read_file_text(raw: bytes, filename: str, what: str = "file") -> tuple[str | None, Problem | None]:
    """Bytes -> text, refusing huge, binary and non-UTF-8 content with one problem."""
    if len(raw) > MAX_BYTES:
        return None, Problem(filename, f"the {what} is {len(raw):,} bytes; more than {MAX_BYTES:,} is refused "
                                       "(is this the right file?)")
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        return None, Problem(filename, f"the {what} contains a NUL byte (binary data?); a job file is UTF-8 text", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return None, Problem(filename, f"the {what} is not valid UTF-8 (byte {err.start}); save it as UTF-8", line)
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def load_bytes(raw: bytes, filename: str, what: str = "file") -> Loaded:
    text, problem = read_file_text(raw, filename, what)
    if problem is not None:
        return Loaded(None, problems=[problem])
    match = _CONTROL.search(text)  # type: ignore[arg-type]
    if match:
        line = text.count("\n", 0, match.start()) + 1  # type: ignore[union-attr]
        return Loaded(None, problems=[Problem(
            filename, f"the {what} contains the control character {match.group()!r}; job files are plain text", line)])
    return load_text(text, filename)  # type: ignore[arg-type]
