"""JSON for run records, histories, pauses and events, fast (pure).

Through the C accelerator module ``_json`` directly: importing the ``json``
package (decoder, scanner, encoder and their regular expressions) costs more
than all the JSON a run writes. Output is standard JSON.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

_WS = " \t\n\r"


_encoder: list = []


def _default(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return str(value)  # paths and the like


def dumps(value: Any) -> str:
    """Compact JSON (``, `` and ``: `` separators) by the C encoder (pure)."""
    if not _encoder:
        from _json import encode_basestring, make_encoder

        # markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan
        _encoder.append(make_encoder({}, _default, encode_basestring, None, ": ", ", ",
                                     False, False, True))
    return "".join(_encoder[0](value, 0))


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"),
                      "-Infinity": float("-inf")}.__getitem__
    memo: dict = {}


_scanner: list = []


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; ValueError if it is not one (pure)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if not _scanner:
        from _json import make_scanner

        # typeshed wants a JSONDecoder-like context; _ScanContext has what the scanner reads
        _scanner.append(make_scanner(_ScanContext()))  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scanner[0](text, start)
    except StopIteration as err:
        raise ValueError(f"not JSON at character {err.value}") from None
    except Exception as err:  # noqa: BLE001 - the C scanner raises JSONDecodeError
        raise ValueError(str(err)) from None
    if text[end:].strip(_WS):
        raise ValueError(f"extra data at character {end}")
    return value


def to_json(record: dict[str, Any]) -> bytes:
    """One field per line (pure)."""
    body = ",\n".join(f"  {dumps(k)}: {dumps(v)}" for k, v in record.items())
    return f"{{\n{body}\n}}\n".encode()
