"""Run a console-script entry point inside this process, as if it were its own process."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def run_entry_point(main: Callable[[], object], argv: Sequence[str]) -> int:
    """`main()` with `sys.argv = argv` (restored after); the exit code a process would have had.

    For a command whose work is cheap next to its imports: `make deploy` runs the Prefect CLI
    this way, and the tests run `mlops` this way, sparing a child process that would import
    Prefect, MLflow and pandas again (3 to 10 s of CPU each).
    """
    saved = sys.argv
    sys.argv = list(argv)
    try:
        main()
    except SystemExit as exc:  # click, Typer and cyclopts apps always end with one
        code = exc.code
    else:
        code = 0
    finally:
        sys.argv = saved
    if code is None:
        return 0
    return code if isinstance(code, int) else 1  # sys.exit("message") exits 1
