"""Every `fnctl ...` command that a message or hint tells the user to run exists."""

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fnctl.cli import cli

ROOT = Path(__file__).resolve().parents[2]
MENTIONS = sorted({m for path in (ROOT / "fnctl").rglob("*.py")
                   for m in re.findall(r"`fnctl ([^`]*)`", path.read_text())})


def test_the_scan_finds_hints():
    assert len(MENTIONS) >= 5


@pytest.mark.parametrize("mention", MENTIONS)
def test_mentioned_command_exists(mention):
    words = []
    for word in mention.split():
        if word.startswith("-") or word.startswith("{") or word.isupper():
            break
        words.append(word)
    command = cli
    for word in words:
        assert isinstance(command, click.Group), f"`fnctl {mention}`: {word!r} follows a command"
        command = command.get_command(click.Context(command), word)
        assert command is not None, f"`fnctl {mention}`: no command {word!r}"
    if len(words) < len(mention.split()) and not mention.split()[len(words)].startswith("-"):
        # Arguments follow: they must be given to a command, not to a group.
        assert not isinstance(command, click.Group), f"`fnctl {mention}`: {words} is a group, not a command"
    result = CliRunner().invoke(cli, [*words, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, f"`fnctl {mention}`: {result.output}"


def test_the_check_catches_a_missing_noun():
    with pytest.raises(AssertionError, match="is a group, not a command"):
        test_mentioned_command_exists("describe {name}")
