"""Names and paths from a workload's file, made safe to print.

A workload's name and its file's path reach the terminal, the failure text, the
Markdown and HTML reports, the JUnit XML and the JSON report. A newline, ``ESC[2J``,
NUL or a bidi override (U+202E) in either would clear the screen, fake a report
line (``PASSED``) or reorder one. Every output shows them as their escapes instead;
only a diff's header keeps the real path, quoted as git quotes it, so that
``git apply`` still finds the file.
"""

from __future__ import annotations

_GIT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as its escape.

    Control, format and separator characters (Unicode categories Cc, Cf, Zl, Zp, and
    the unassigned ones) become ``\\x1b``, ``\\n``, ``\\u202e`` …, as ``repr`` writes
    them; everything else, accents and CJK included, stays as written. A text that
    is already printable is returned as it is, so escaping twice changes nothing."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def git_quoted(path: str) -> str:
    """``path`` as git writes it in a diff header: as it is when every character is
    printable, else in double quotes with C escapes (``"a/evil\\033[2J\\n.yaml"``).

    git quotes a name this way (``quote_c_style`` in git's ``quote.c``), and ``git
    apply`` and GNU patch read it back to the real name, so the patch still applies
    while the header can neither drive a terminal nor break a line. Printable
    non-ASCII characters stay as UTF-8 inside the quotes, which both read verbatim."""
    if path.isprintable() and '"' not in path and "\\" not in path:
        return path
    quoted = []
    for char in path:
        if char in _GIT_ESCAPES:
            quoted.append(_GIT_ESCAPES[char])
        elif char.isprintable():
            quoted.append(char)
        else:
            quoted.append("".join(f"\\{byte:03o}" for byte in _utf8(char)))
    return '"' + "".join(quoted) + '"'


def _utf8(char: str) -> bytes:
    """The bytes of one character of a path: a file name's undecodable byte, which
    Python holds as a surrogate escape (U+DC80-U+DCFF), is that byte again."""
    try:
        return char.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no file name decodes to
        return char.encode("utf-8", errors="surrogatepass")
