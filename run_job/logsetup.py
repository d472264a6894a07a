"""run-job's own log messages, through the config's ``logging`` dictConfig.

The CLI is the one owner of logging. A handler that cannot be built (syslog
on a host without ``/dev/log``, a file in a missing folder) is left out and
the rest is configured; a handler that fails later drops the record quietly
(``logging.raiseExceptions = False``). Neither prints a traceback nor stops a
run. The problems are returned for the CLI to show with ``--debug`` or on a
terminal (under cron a warning on every run would only fill mailboxes).

Without a ``logging`` section nothing is configured and ``logging`` is not
even imported on the hot path: ``log`` writes warnings and errors to stderr
as ``run-job: message``, and info too with ``--debug``.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Mapping

LOGGER = "process-control"
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

_logger: Any = None  # a logging.Logger once configured
_stderr_level = WARNING


def _deepcopy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def configure(logging_config: Mapping[str, Any] | None, *, debug: bool = False) -> list[str]:
    """Set up logging; returns one message per handler left out."""
    global _logger, _stderr_level
    _stderr_level = DEBUG if debug else WARNING
    if not logging_config:
        _logger = None
        return []
    import logging
    import logging.config

    logging.raiseExceptions = False
    wanted = _deepcopy(dict(logging_config))
    problems: list[str] = []
    try:
        logging.config.dictConfig(_deepcopy(wanted))
    except Exception as err:  # noqa: BLE001 - any handler may fail in any way
        bad = _failing_handlers(wanted)
        if not bad:
            problems.append(f"logging config unusable, using stderr: {_one_line(err)}")
            _logger = None
            return problems
        for name, why in bad.items():
            problems.append(f"logging handler {name!r} left out: {why}")
        try:
            logging.config.dictConfig(without_handlers(wanted, set(bad)))
        except Exception as err2:  # noqa: BLE001
            problems.append(f"logging config unusable, using stderr: {_one_line(err2)}")
            _logger = None
            return problems
    _logger = logging.getLogger(LOGGER)
    return problems


def without_handlers(config: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    """A copy of a dictConfig with the named handlers removed everywhere (pure)."""
    out = _deepcopy(dict(config))
    handlers = dict(out.get("handlers") or {})
    for name in names:
        handlers.pop(name, None)
    out["handlers"] = handlers
    for section in [out.get("root")] + list((out.get("loggers") or {}).values()):
        if isinstance(section, dict) and isinstance(section.get("handlers"), list):
            section["handlers"] = [h for h in section["handlers"] if h not in names]
    for handler in handlers.values():  # MemoryHandler targets etc.
        if isinstance(handler, dict) and handler.get("target") in names:
            handler.pop("target")
    return out


def _failing_handlers(config: Mapping[str, Any]) -> dict[str, str]:
    """Try each handler alone; name -> why it cannot be built."""
    import logging.config

    bad: dict[str, str] = {}
    handlers = dict(config.get("handlers") or {})
    for name in handlers:
        trial = {
            "version": config.get("version", 1),
            "disable_existing_loggers": False,
            "formatters": _deepcopy(config.get("formatters") or {}),
            "filters": _deepcopy(config.get("filters") or {}),
            "handlers": {name: _deepcopy(handlers[name])},
        }
        try:
            logging.config.dictConfig(trial)
        except Exception as err:  # noqa: BLE001
            bad[name] = _one_line(err.__cause__ or err)
    return bad


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def log(level: int, message: str, *args: Any) -> None:
    """Log through the configured logger, or to stderr; never raises."""
    try:
        if _logger is not None:
            _logger.log(level, message, *args)
            return
        if level >= _stderr_level:
            text = message % args if args else message
            os.write(2, f"run-job: {text}\n".encode("utf-8", "replace"))
    except Exception:  # noqa: BLE001 - logging never stops a run
        pass


def info(message: str, *args: Any) -> None:
    log(INFO, message, *args)


def warning(message: str, *args: Any) -> None:
    log(WARNING, message, *args)


def error(message: str, *args: Any) -> None:
    log(ERROR, message, *args)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (ValueError, OSError):
        return False
