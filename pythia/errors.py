"""Errors a user can fix, and how the command line says them.

Every error the package raises for a mistake the user can correct (a wrong name, a step
out of range, data not built yet, a run directory in use) derives from
:class:`PythiaError`. Its message is one line: what is wrong, then what to do
("unknown dataset 'dedupe'; choose one of: standard, deduped"). ``pythia.cli.main``
prints it as ``pythia <command>: error: <message>`` and exits with status 2, without a
traceback; any other exception is a bug and keeps its traceback (set ``PYTHIA_DEBUG=1`` to
see the traceback of a user error too). A few errors from outside the package are user
errors as well (a path that does not exist, malformed YAML); :func:`user_message` maps them.

The classes below also derive from the built-in type a caller would catch
(``ValueError``, ``FileNotFoundError``, ``IndexError``), so library code and tests written
against those keep working. docs/errors.md states the convention for new subcommands.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import yaml

EXIT_USER_ERROR = 2
"""Exit status of a command stopped by a user error (argparse uses 2 for bad arguments too)."""


class PythiaError(Exception):
    """Base class of every user-fixable error; the message names the problem and what to do."""


class UsageError(PythiaError, ValueError):
    """An argument or a name the user gave is wrong: unknown name, value out of range,
    options that do not go together."""


class MissingInputError(PythiaError, FileNotFoundError):
    """Something the command reads has not been made yet (data not built, model not
    trained); the message says which command makes it."""


class DataError(PythiaError, ValueError):
    """A file exists but is damaged or does not fit the configuration; the message names the
    file and how to rebuild it."""


def require_device(device: str) -> str:
    """``device`` as given, or a :class:`UsageError` where it names CUDA and torch sees none
    (every command with ``--device`` checks this before loading anything)."""
    if str(device).startswith("cuda"):
        import torch  # heavy: only a command asking for CUDA pays for it

        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {device} asked for, but torch sees no CUDA device; use --device cpu"
            )
    return device


def one_line(message: str) -> str:
    """``message`` on one line: the lines of a multi-line message joined with '; '."""
    parts = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(parts).replace(":;", ":")


def _os_error(what: str, advice: str) -> Callable[[OSError], str]:
    def fmt(e: OSError) -> str:
        target = e.filename2 or e.filename  # a rename names its destination second: the user's path
        where = f": {target}" if target else ""
        return f"{what}{where}; {advice}"

    return fmt


def _yaml_error(e: Exception) -> str:
    return f"not valid YAML ({one_line(str(e))}); fix the file's syntax"


# Errors raised outside the package (the standard library, PyYAML) that are the user's to
# fix, each with how to say it in one line. A FileNotFoundError that the package raised with
# its own message (DataNotBuiltError, MissingInputError) keeps that message.
KNOWN_ERRORS: dict[type[BaseException], Callable] = {
    FileNotFoundError: _os_error("no such file or directory", "check the path"),
    PermissionError: _os_error(
        "permission denied", "check the file's permissions or choose another path"
    ),
    IsADirectoryError: _os_error("is a directory, a file was expected", "give the path of a file"),
    NotADirectoryError: _os_error("not a directory", "give the path of a directory"),
}


def _known_yaml_errors() -> dict[type[BaseException], Callable]:
    return {yaml.YAMLError: _yaml_error}


def user_message(exc: BaseException) -> str | None:
    """The one-line message of a user error, or None if ``exc`` is a bug (keep its traceback)."""
    if isinstance(exc, PythiaError):
        return one_line(str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return _os_error(
            "no space left on the device", "free some space or point $PYTHIA_WORK elsewhere"
        )(exc)
    for cls, fmt in {**KNOWN_ERRORS, **_known_yaml_errors()}.items():
        if isinstance(exc, cls):
            if isinstance(exc, OSError) and exc.errno is None and exc.args:
                return one_line(str(exc))  # raised with a message of its own, not by the OS
            return fmt(exc)
    return None
