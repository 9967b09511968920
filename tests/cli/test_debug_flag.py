"""The CLI's last line of defence: an unexpected exception in any command is one line on
stderr and exit 70, ``--debug`` (or ``BRAID_DEBUG=1``) shows its traceback, Ctrl-C exits 130,
and exits and usage errors pass through unchanged.

A command is made to fail by replacing ``load_settings`` in ``braid.cli.admin`` (what
``braid stats`` calls first) with a function that raises: in this process through typer's
runner, and in a real ``braid`` process for what the terminal shows (the traceback).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from cli_helpers import braid, cli_env, make_runner
from typer.testing import CliRunner

from braid.cli import admin
from braid.cli.common import ExitCode
from braid.engine.errors import InvalidRequestError

HINT = "(run with --debug for the traceback)"


def raising(exc: BaseException) -> Callable[..., object]:
    def fail(*args: object, **kwargs: object) -> object:
        raise exc

    return fail


@pytest.fixture
def runner() -> CliRunner:
    return make_runner()


def test_the_exit_codes_are_the_documented_ones() -> None:
    assert (ExitCode.INTERNAL, ExitCode.INTERRUPTED) == (70, 130)
    # None of them is taken by another meaning.
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


def test_an_unexpected_exception_is_one_line_and_exit_70(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "load_settings", raising(RuntimeError("the disk said no")))
    result = braid(runner, "stats")
    assert result.exit_code == ExitCode.INTERNAL == 70
    assert result.stderr == f"braid: internal error: RuntimeError: the disk said no {HINT}\n"
    assert result.stdout == ""


def test_a_multi_line_message_is_one_line_and_markup_is_printed_as_is(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = RuntimeError("first line\n  [red]second[/] line\n")
    monkeypatch.setattr(admin, "load_settings", raising(boom))
    result = braid(runner, "stats")
    assert result.exit_code == 70
    expected = f"braid: internal error: RuntimeError: first line [red]second[/] line {HINT}\n"
    assert result.stderr == expected


def test_a_long_message_is_cut(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "load_settings", raising(ValueError("x" * 5000)))
    result = braid(runner, "stats")
    assert result.exit_code == 70
    assert f"ValueError: {'x' * 497}... {HINT}" in result.stderr
    assert len(result.stderr) < 600


def test_an_exception_without_a_message_names_its_type(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "load_settings", raising(ZeroDivisionError()))
    result = braid(runner, "stats")
    assert (result.exit_code, result.stderr) == (
        70,
        f"braid: internal error: ZeroDivisionError {HINT}\n",
    )


@pytest.mark.parametrize("debug", [["--debug"], []], ids=["--debug", "BRAID_DEBUG=1"])
def test_debug_lets_the_exception_through(
    monkeypatch: pytest.MonkeyPatch, debug: list[str]
) -> None:
    runner = make_runner() if debug else make_runner(BRAID_DEBUG="1")
    monkeypatch.setattr(admin, "load_settings", raising(RuntimeError("the disk said no")))
    with pytest.raises(RuntimeError, match="the disk said no"):
        braid(runner, *debug, "stats")


def test_braid_debug_0_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "load_settings", raising(RuntimeError("x")))
    assert braid(make_runner(BRAID_DEBUG="0"), "stats").exit_code == 70


def test_ctrl_c_exits_130_with_one_line(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "load_settings", raising(KeyboardInterrupt()))
    result = braid(runner, "stats")
    assert (result.exit_code, result.stderr) == (130, "braid: interrupted\n")


def test_a_braid_error_no_command_caught_is_still_a_message(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BraidErrors are written for users: one the command forgot to map is exit 1, not a bug
    # report.
    monkeypatch.setattr(admin, "load_settings", raising(InvalidRequestError("bad request")))
    result = braid(runner, "stats")
    assert result.exit_code == ExitCode.FAILED
    assert result.stderr == "error: bad request\n"


@pytest.mark.parametrize(
    ("exc", "code", "stderr"),
    [
        (typer.Exit(3), 3, ""),
        (typer.Exit(0), 0, ""),
        (SystemExit(4), 4, ""),
        (typer.BadParameter("not like that", param_hint="--json"), 2, "not like that"),
        (typer.Abort(), 1, "Aborted"),
    ],
    ids=["typer.Exit(3)", "typer.Exit(0)", "SystemExit(4)", "BadParameter", "Abort"],
)
def test_exits_and_usage_errors_pass_through_unchanged(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    code: int,
    stderr: str,
) -> None:
    monkeypatch.setattr(admin, "load_settings", raising(exc))
    result = braid(runner, "stats")
    assert result.exit_code == code
    assert stderr in result.stderr
    assert "internal error" not in result.stderr


def test_usage_errors_of_the_command_line_are_unchanged(runner: CliRunner) -> None:
    result = braid(runner, "stats", "--no-such-option")
    assert result.exit_code == ExitCode.USAGE
    assert "No such option: --no-such-option" in result.stderr
    assert "internal error" not in result.stderr


def test_an_unknown_debug_value_is_a_usage_error() -> None:
    result = braid(make_runner(BRAID_DEBUG="maybe"), "stats")
    assert result.exit_code == ExitCode.USAGE
    assert "--debug" in result.stderr


# A real process: what the terminal shows. load_settings is replaced before the command runs.
SCRIPT = """\
import sys
import braid.cli.admin as admin
def fail(*args, **kwargs):
    raise RuntimeError("the disk said no")
admin.load_settings = fail
from braid.cli.app import main
sys.argv = ["braid", *sys.argv[1:]]
main()
"""


@pytest.fixture
def run_braid(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``braid ARGS`` in a process whose ``stats`` raises (a file: tracebacks show lines)."""
    script = tmp_path / "failing_braid.py"
    script.write_text(SCRIPT)

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args],
            env=cli_env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_in_a_process_without_debug_no_traceback(
    run_braid: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    done = run_braid("stats")
    assert done.returncode == 70
    assert done.stderr == f"braid: internal error: RuntimeError: the disk said no {HINT}\n"


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--debug", "stats"], {}), (["stats"], {"BRAID_DEBUG": "1"})],
    ids=["--debug", "BRAID_DEBUG=1"],
)
def test_in_a_process_debug_prints_the_traceback(
    run_braid: Callable[..., subprocess.CompletedProcess[str]],
    args: list[str],
    env: dict[str, str],
) -> None:
    done = run_braid(*args, **env)
    assert done.returncode == 1  # Python's own exit for an uncaught exception
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert "braid/cli/admin.py" in done.stderr  # through the command...
    assert 'raise RuntimeError("the disk said no")' in done.stderr  # ...to the failing line
    assert done.stderr.rstrip().endswith("RuntimeError: the disk said no")
    assert "internal error" not in done.stderr
