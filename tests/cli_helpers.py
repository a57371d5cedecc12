"""Helpers for tests that run `booster` commands in-process (booster.cli.main) and read what they printed."""


def one_line_error(capsys, command: str, *words: str) -> str:
    """The error `booster <command>` printed: exactly one line, `booster <command>: error: ...`, no traceback and
    no usage text, containing every one of ``words``. Returns the line."""
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out and "usage:" not in err, err[-2000:]
    assert len(err.splitlines()) == 1 and err.startswith(f"booster {command}: error: "), err[-2000:]
    for w in words:
        assert w in err, err
    return err
