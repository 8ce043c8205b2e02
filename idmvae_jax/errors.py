"""Expected errors: what a user can fix, reported by the CLIs as one message without a traceback.

`UserError` is the base of every such error; its message names what is wrong and the fix. The
CLIs print `ERROR: <message>` and exit with status 2; set IDMVAE_TRACEBACK=1 to see the full
traceback (for a bug report). Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import os
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """An expected error; its message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work (the message names the field and the fix)."""


class DataError(UserError, ValueError):
    """User data (folders, files, arrays) that cannot be used as given."""


def report_and_exit(error: UserError) -> None:
    """Prints `error` on stderr as one line (or re-raises it when IDMVAE_TRACEBACK is set) and
    exits with EXIT_USER_ERROR."""
    if os.environ.get("IDMVAE_TRACEBACK", "") not in ("", "0"):
        raise error
    print(f"ERROR: {error}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)
