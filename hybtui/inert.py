"""Untrusted text made inert: the one place that prepares run names, configuration values,
errors, events and log lines for a terminal, Rich/Textual markup, Markdown, CSV and JSON.

Such text comes from users (``--name '[bold red]x'``), from files, or from a store written
by anyone. Shown as it is, Rich markup in it is interpreted (``[/]`` even raises), a
newline splits a table row, and an ESC sequence reaches the terminal and rewrites the
screen. So every display goes through here:

* ``visible``: control characters (C0, DEL, C1, ESC included), Unicode line separators and
  bidirectional overrides are written as escapes (``\\x1b``, ``\\n``, ``\\u202e``), which the
  terminal prints rather than obeys;
* ``text``: a Rich ``Text``, which is never parsed for markup (nor for emoji codes), and
  ``visible``;
* ``lines``: multi-line text (logs, tracebacks) keeps its line breaks, nothing else;
* ``md_cell`` / ``csv_field`` / ``dumps``: the export formats.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.text import Text

#: What a terminal would obey rather than print: C0 controls, DEL, C1 controls (CSI 0x9b
#: among them), line/paragraph separators, and the bidirectional embeddings, overrides and
#: isolates that reorder what is shown ("Trojan Source").
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Line breaks of text that is shown as lines (a log, a Markdown cell).
LINE_BREAK = re.compile("\r\n|[\r\n\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any, keep: str = "") -> str:
    """``str(value)`` with every UNSAFE character written as a visible escape, except the
    characters in ``keep`` (e.g. ``"\\n"`` where line breaks are data)."""
    string = "" if value is None else str(value)
    if keep:
        return UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), string)
    return UNSAFE.sub(_escape, string)


def has_unsafe(value: str) -> bool:
    """Whether ``value`` holds a character that ``visible`` would escape."""
    return UNSAFE.search(value) is not None


def text(value: Any, style: str = "") -> Text:
    """A Rich/Textual cell or label showing ``value`` literally: ``Text`` is never parsed for
    markup, and its control characters are ``visible``."""
    return Text(visible(value), style=style)


def lines(value: Any) -> str:
    """Multi-line text (a log, a traceback): line breaks kept as ``\\n``, tabs expanded, every
    other UNSAFE character visible."""
    return visible(LINE_BREAK.sub("\n", "" if value is None else str(value)), keep="\n\t").expandtabs(4)


def md_cell(value: Any) -> str:
    """A Markdown table cell: line breaks become ``<br>``, backslashes and ``|`` are escaped
    (so neither a name nor its escapes can end the cell), controls are visible."""
    flat = LINE_BREAK.sub("<br>", "" if value is None else str(value))
    return visible(flat).replace("\\", "\\\\").replace("|", "\\|")


def csv_field(value: Any) -> Any:
    """A CSV field: text with its controls visible (line breaks and tabs are data, which the
    csv module quotes); numbers, booleans and None unchanged."""
    return visible(value, keep="\n\t") if isinstance(value, str) else value


def dumps(data: Any, **options: Any) -> str:
    """JSON for a terminal or a file: ``json.dumps`` escapes every control character but DEL
    (legal raw in a JSON string), which is escaped here too."""
    return json.dumps(data, **options).replace("\x7f", "\\u007f")
