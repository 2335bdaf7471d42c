"""One-line errors for every command (``riskq-train``, ``riskq-eval``, ``riskq-rigm``,
``riskq-plot``, ``riskq-table``): ``<prog>: error: <message>`` on stderr, no traceback.

Exit codes: 2 for input that is refused (a bad key or value, a config or checkpoint that cannot
be read, a run directory that is in use or holds another run), 1 for a run that started and
then failed (``RunFailed``, e.g. non-finite values during training). ``UsageError`` and
``RunFailed`` live in ``riskq.errors``, so library code raises them without importing this
layer. Unexpected exceptions keep their traceback, and ``HYDRA_FULL_ERROR=1`` shows the
traceback of every error.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import NoReturn

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf.errors import OmegaConfBaseException

from riskq.cli.trusted_config import guard_hydra
from riskq.errors import RunFailed

REFUSED = 2  # exit code of refused input
FAILED = 1  # exit code of a run that started and failed
INTERRUPTED = 130  # exit code after Ctrl-C or SIGTERM (the shell's 128 + SIGINT)
# Errors raised by launcher plugins (e.g. submitit's "Could not detect srun") are bad input too.
LAUNCHER_MODULES = ("submitit", "hydra_plugins")
# config groups that only some env files put in their defaults list: group -> which envs and
# what the group picks (Hydra's own message for them elsewhere suggests appending it with +)
ENV_GROUPS = {"rule": ("the SMAX envs (env=smax_*)", "a learning rule")}
NOT_IN_DEFAULTS = re.compile(r"Could not override '([\w/]+)'\. No match in the defaults list")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines, tabs) collapsed to one space."""
    return " ".join(str(text).split())


def describe(error: BaseException) -> str:
    """The message of ``error`` on one line; YAML syntax errors name file, line and column."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}"
        context = f" {error.context}" if error.context else ""
        return one_line(f"YAML syntax error in {where}: {error.problem}{context}")
    message = str(error) or type(error).__name__
    env_group = NOT_IN_DEFAULTS.match(message)
    if env_group and env_group.group(1) in ENV_GROUPS:
        return env_group_message(env_group.group(1))
    if isinstance(error, MissingConfigException) and error.options:  # unknown group option
        first_line = message.splitlines()[0]
        return one_line(f"{first_line}; valid choices: {', '.join(error.options)}")
    cause = error.__cause__
    if isinstance(error, HydraException) and isinstance(cause, OmegaConfBaseException):
        message = f"{message} ({cause})"  # Hydra's wrapper says where, the cause says what
    if _raised_by_launcher(error) and not isinstance(error, RunFailed):  # not a sweep's runs
        message = f"hydra/launcher: {message}"
    return one_line(message)


def env_group_message(group: str) -> str:
    """The error for ``group=<choice>`` given with an env whose file does not take that group:
    which envs do, and the group's choices (its files in the shipped configs)."""
    envs, what = ENV_GROUPS[group]
    choices = sorted(
        f.name.removesuffix(".yaml")
        for f in files("riskq.configs").joinpath(group).iterdir()
        if f.name.endswith(".yaml")
    )
    return f"{group}: only {envs} take {what}; valid choices there: {', '.join(choices)}"


def report(prog: str, error: BaseException | str, *, code: int | None = None) -> int:
    """Print ``<prog>: error: <message>`` on one line to stderr; return the exit code."""
    message = error if isinstance(error, str) else describe(error)
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    if code is None:
        code = REFUSED if isinstance(error, str) else exit_code(error)
    return code


def exit_with_error(prog: str, error: BaseException | str, *, code: int | None = None) -> NoReturn:
    """``report`` the error, then exit with its code (2 refused input, 1 failed run)."""
    sys.exit(report(prog, error, code=code))


def _raised_by_launcher(error: BaseException) -> bool:
    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    return any(f"{os.sep}{name}{os.sep}" in file for file in files for name in LAUNCHER_MODULES)


def is_reported(error: BaseException) -> bool:
    """Errors caused by the user's input, reported as one line rather than a traceback."""
    expected = (
        ValueError,  # UsageError, CheckpointError, bad values named by the validators
        ImportError,  # a missing optional dependency (extra)
        OSError,  # unreadable or unwritable paths
        RunFailed,
        yaml.YAMLError,
        HydraException,  # composition: unknown config group option, unknown key, ...
        OmegaConfBaseException,  # type errors of overrides, interpolation errors
    )
    return isinstance(error, expected) or _raised_by_launcher(error)


def exit_code(error: BaseException) -> int:
    return FAILED if isinstance(error, RunFailed) else REFUSED


@contextmanager
def job_errors(prog: str) -> Iterator[None]:
    """Around the body of a Hydra task function: a single run reports its error here, before
    Hydra would add an "Error executing job" line. Sweep jobs re-raise: Hydra names the
    failed job, ``hydra_command`` reports the error."""
    try:
        yield
    except Exception as error:
        if (
            _SHOW_TRACEBACKS[0]
            or not is_reported(error)
            or HydraConfig.get().mode == RunMode.MULTIRUN
        ):
            raise
        exit_with_error(prog, error)


_SHOW_TRACEBACKS = [False]  # HYDRA_FULL_ERROR=1 was set by the user (set by hydra_command)


def hydra_command(
    prog: str, hydra_main: Callable[[], None], *, cleanup: Callable[[], None] | None = None
) -> Callable[[], None]:
    """A console entry point around a ``@hydra.main`` function that reports errors in one line.

    Hydra prints composition errors (raised before the task function runs) itself and exits 1;
    with ``HYDRA_FULL_ERROR=1`` it re-raises them instead, so they are caught here. ``cleanup``
    runs after every invocation, successful or not.
    """

    def main() -> None:
        previous = os.environ.get("HYDRA_FULL_ERROR")
        _SHOW_TRACEBACKS[0] = previous == "1"
        os.environ["HYDRA_FULL_ERROR"] = "1"
        guard_hydra()  # no config file runs code (riskq.cli.trusted_config)
        try:
            hydra_main()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM in riskq-train (its run says interrupted)
            print(f"{prog}: interrupted", file=sys.stderr)
            sys.exit(INTERRUPTED)
        except Exception as error:
            if previous == "1" or not is_reported(error):
                raise
            exit_with_error(prog, error)
        finally:
            if previous is None:
                os.environ.pop("HYDRA_FULL_ERROR", None)
            else:
                os.environ["HYDRA_FULL_ERROR"] = previous
            if cleanup is not None:
                cleanup()

    return main
