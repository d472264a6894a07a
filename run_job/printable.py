"""How text from files and users is shown: on one line, with no control characters.

Names, descriptions, tags, reasons and file names come from job files and
folders that others may write. Shown raw, a newline would split one problem
into two lines (or forge a second one), and an escape sequence would drive the
terminal of whoever runs ``--status``. ``printable`` escapes C0 and C1 control
characters, DEL, the Unicode line and paragraph separators and the
bidirectional overrides (which make a line display in another order than it
reads) the way Python writes them (``\\n``, ``\\x1b``, ``\\u2028``); everything
else, other languages included, is shown as it is. JSON output needs none of
this (JSON escapes).
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CODES = [*range(0x20), *range(0x7f, 0xa0), 0x2028, 0x2029, *range(0x202a, 0x202f),
          *range(0x2066, 0x206a)]
# str.translate, not re: run-job --job does not import re on its hot path
_TABLE = {code: _NAMED.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
          for code in _CODES}


def printable(text: object) -> str:
    """``text`` (made a string) on one line, control characters escaped (pure)."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():  # fast path: nothing to escape (also true of most non-ASCII text)
        return text
    return text.translate(_TABLE)
