"""`run_entry_point`: the exit code a console script would have had as a process."""

from __future__ import annotations

import sys

import pytest

from deployments.console import run_entry_point


def _exits(code: object):
    def main() -> None:
        assert sys.argv == ["prog", "--flag"]
        if code != "return":
            raise SystemExit(code)

    return main


@pytest.mark.parametrize(
    ("code", "expected"),
    [("return", 0), (None, 0), (0, 0), (2, 2), ("error: message", 1)],
)
def test_exit_code_as_a_process_would_have_it(code: object, expected: int) -> None:
    argv = list(sys.argv)
    assert run_entry_point(_exits(code), ["prog", "--flag"]) == expected
    assert sys.argv == argv  # restored
