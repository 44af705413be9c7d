"""The command line for people: every option explained with its default, one name for one
thing, the README's command list equal to the parser's, -q and -v."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from contract import assert_error_line, assert_ok, lock_data, run_cli, run_module, write_lock
from wheelmaker import artifact_for, make_wheel

from wheelhouse.cli import _parser, synopsis


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_has_help_and_a_metavar() -> None:
    missing = []
    for name, command in commands().items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}: help")
            takes_value = action.option_strings and action.nargs != 0
            if takes_value and action.metavar is None and action.choices is None:
                missing.append(f"{name} {action.option_strings}: metavar")
    assert missing == []


def test_help_states_defaults() -> None:
    help_text = " ".join(commands()["lock"].format_help().split())
    assert "the lock (default: pylock.toml)" in help_text
    assert "parallel downloads (default: 8)" in help_text
    assert "(default: None)" not in help_text and "(default: False)" not in help_text


@pytest.mark.parametrize("option", ["--wheelhouse", "--python", "--target"])
def test_one_name_means_one_thing(option: str) -> None:
    """Every command that takes the wheelhouse, the interpreter or a target spells it alike."""
    spelled = {}
    for name, command in commands().items():
        for action in command._actions:
            if option in action.option_strings:
                spelled[name] = tuple(s for s in action.option_strings if s != option)
    assert len(set(spelled.values())) == 1, spelled
    assert len(spelled) >= 3


def test_readme_lists_the_commands_as_the_parser_has_them() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = "## Commands\n\n"
    block = text[text.index("```sh\n", text.index(head)) + len("```sh\n") :]
    block = block[: block.index("```\n")]
    assert block == synopsis(), "README's command list is stale: run scripts/synopsis"


def test_python_takes_an_interpreter_and_python_version_a_version() -> None:
    proc = run_module("lock", "x", "--python", "3.11")
    message = assert_error_line(proc.returncode, proc.stderr, 2, "'3.11' is a version")
    assert "--python-version 3.11" in message
    proc = run_module("lock", "x", "--python-version", "three")
    assert_error_line(proc.returncode, proc.stderr, 2, "expected X.Y or X.Y.Z")


def _one_wheel_lock(tmp_path: Path) -> tuple[Path, Path]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = make_wheel(wheels, "demo", "1.0")
    return write_lock(tmp_path / "pylock.toml", lock_data([artifact_for(wheel)])), wheels


def test_quiet_and_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock, wheels = _one_wheel_lock(tmp_path)
    quiet = run_cli(capsys, "install", lock, "-w", wheels, "--prefix", tmp_path / "q", "-q")
    assert_ok(quiet)
    assert quiet.err == ""
    loud = run_cli(capsys, "install", lock, "-w", wheels, "--prefix", tmp_path / "v", "-v")
    assert_ok(loud)
    assert "wheelhouse.install" in loud.err and "moved into place" in loud.err
    out = tmp_path / "requirements.txt"
    assert_ok(run_cli(capsys, "export", lock, "-o", out, "-q"))


def test_fetch_names_the_wheelhouse_like_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock, _wheels = _one_wheel_lock(tmp_path)
    outcome = run_cli(capsys, "fetch", lock)
    assert_error_line(outcome.rc, outcome.err, 2, "--wheelhouse DIR")
    assert_ok(run_cli(capsys, "fetch", lock, "-w", tmp_path / "wh"))
    assert (tmp_path / "wh" / "demo-1.0-py3-none-any.whl").is_file()
    assert_ok(run_cli(capsys, "fetch", lock, "-d", tmp_path / "old"))  # the old spelling
    assert (tmp_path / "old" / "demo-1.0-py3-none-any.whl").is_file()


def test_choices_are_the_stages_own() -> None:
    from wheelhouse import cli, export, lock

    assert set(cli.RESOLVER_CHOICES) == set(lock.RESOLVERS)
    assert cli.EXPORT_FORMATS == export.FORMATS


def test_starting_the_cli_loads_no_stage_it_does_not_run() -> None:
    """Each command imports its stages when it runs (`image` and `nar-hash` start in 0.05 s)."""
    code = "import sys, wheelhouse.cli; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = ["urllib3", "wheelhouse.lock", "wheelhouse.install", "wheelhouse.download", "pip"]
    assert [m for m in heavy if m in loaded] == []
