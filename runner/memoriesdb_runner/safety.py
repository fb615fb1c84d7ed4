"""What the CLI takes from and shows to a possibly hostile world: text printed through Rich, files
that hold secrets or settings, the API key."""

from __future__ import annotations

import os
import re
import stat
import sys
import unicodedata
from pathlib import Path

from rich.markup import escape

from .errors import ConfigurationError

# C0 and C1 controls and DEL (ANSI escape sequences start with ESC or CSI), bidi overrides and other
# format characters that make a terminal show something else than the text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(ch: str) -> bool:
    return unicodedata.category(ch) != "Cf"


def plain_text(value: object) -> str:
    """Any value, fit to print as one line of plain text: newlines and tabs become spaces, other
    control and format characters (the start of every ANSI/OSC escape sequence) are dropped."""
    if value is None:
        return ""
    text = str(value).replace("\n", " ").replace("\t", " ").replace("\r", " ")
    text = _CONTROL.sub("", text)
    if not text.isascii():
        text = "".join(ch for ch in text if _visible(ch))
    return text


def safe_text(value: object) -> str:
    """Any value from the database, a provider or a user, fit to print through Rich: plain_text
    with its Rich markup escaped."""
    return escape(plain_text(value))


def check_private_file(path: Path, *, what: str, secret: bool) -> None:
    """Refuse a file another local user could have written (or, for a secret, could read):
    group- or world-writable, not owned by the current user (or root); for a secret also
    group- or world-readable. Raises ConfigurationError with a fix."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ConfigurationError(f"{what} {path} is not a regular file")
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigurationError(f"{what} {path} is not owned by you (uid {st.st_uid}): refusing to use it")
    if secret and st.st_mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigurationError(f"{what} {path} is readable by other users: refusing to use it (chmod 600 {path})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigurationError(f"{what} {path} is writable by other users: refusing to use it (chmod go-w {path})")


def read_api_key(*, option: str | None, from_stdin: bool, file: Path | None, env: str | None) -> str | None:
    """The API key from exactly one place: --api-key-file, --api-key-stdin, MEMORIESDB_API_KEY, or
    (discouraged: every local user sees it in the process list) --api-key."""
    given = [name for name, v in (("--api-key", option), ("--api-key-stdin", from_stdin), ("--api-key-file", file)) if v]
    if len(given) > 1:
        raise ConfigurationError(f"give the API key one way only, not {' and '.join(given)}")
    if file:
        check_private_file(file, what="API key file", secret=True)
        key = file.read_text(encoding="utf-8").strip()
    elif from_stdin:
        key = sys.stdin.readline().strip()
    elif option:
        print(
            "warning: --api-key is visible to every local user in the process list; "
            "use MEMORIESDB_API_KEY, --api-key-file or --api-key-stdin",
            file=sys.stderr,
        )
        key = option
    else:
        key = env or ""
    if (file or from_stdin) and not key:
        raise ConfigurationError(f"no API key in {'the file' if file else 'standard input'}")
    return key or None
