"""Parse A-REX's GRAMI file without a shell.

A-REX writes the GRAMI as `joboption_NAME='value'` lines with POSIX single quoting (a quote inside
a value is written `'\''`). A grid user controls many of the values, so the file is read with a
small grammar that accepts exactly that form: single-quoted runs, escaped quotes and plain
characters that a shell never expands. Anything a shell would interpret (`$`, backticks, `;`, ...)
outside quotes is an error rather than something to guess about.
"""

import re

from .errors import JobRejected

MAX_GRAMI_BYTES = 1 << 20

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_QUOTED = re.compile(r"'([^']*)'")
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]+")


def parse_grami(data: bytes) -> dict[str, str]:
    """Return the assignments of a GRAMI file; later assignments win, as in a shell."""
    if len(data) > MAX_GRAMI_BYTES:
        raise JobRejected(f"GRAMI file is {len(data)} bytes, more than the {MAX_GRAMI_BYTES} allowed")
    if b"\0" in data:
        raise JobRejected("GRAMI file contains a NUL byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JobRejected(f"GRAMI file is not UTF-8 text (byte {e.start})") from None

    fields: dict[str, str] = {}
    pos, line = 0, 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\n":
            pos, line = pos + 1, line + 1
            continue
        if ch in " \t":
            pos += 1
            continue
        if ch == "#":
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
            continue
        name = _NAME.match(text, pos)
        if not name:
            raise JobRejected(f"GRAMI line {line}: expected NAME='value', found {_excerpt(text, pos)}")
        key = name.group()[:-1]
        pos = name.end()
        value: list[str] = []
        while pos < len(text):
            if m := _QUOTED.match(text, pos):
                value.append(m.group(1))
                line += m.group(1).count("\n")
            elif text.startswith("\\'", pos):
                m = None
                value.append("'")
                pos += 2
                continue
            elif m := _PLAIN.match(text, pos):
                value.append(m.group())
            else:
                break
            pos = m.end()
        if pos < len(text) and text[pos] not in " \t\n":
            if text[pos] == "'":
                raise JobRejected(f"GRAMI line {line}: unterminated quote in {key}")
            raise JobRejected(
                f"GRAMI line {line}: {key} has unquoted shell character {text[pos]!r}"
            )
        fields[key] = "".join(value)
    return fields


def _excerpt(text: str, pos: int) -> str:
    return repr(text[pos : pos + 20].split("\n")[0])


def quote(value: str) -> str:
    """Quote a value the way A-REX does, so that parse_grami reads it back unchanged."""
    return "'" + value.replace("'", "'\\''") + "'"
