import pytest

from depth_nodes.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_an_error(capsys):
    assert main(['frobnicate']) == 2
    assert 'usage: depth-nodes' in capsys.readouterr().out


def test_dispatches_to_the_module(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['bag', '--help'])
    assert exit_info.value.code == 0
    assert 'play' in capsys.readouterr().out
