"""The one wait-until: returns the first value that satisfies the condition, or fails saying what
it waited for and what it last saw."""

from __future__ import annotations

import itertools

import pytest

from lifecycle.core.waiting import WaitTimeout, wait_until


def test_wait_until_returns_the_first_value_that_is_done() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter), "counter reaches 3", 5, 0.001, lambda n: n >= 3) == 3


def test_wait_until_times_out_naming_the_condition_and_the_last_observation() -> None:
    with pytest.raises(WaitTimeout, match=r"queue empty: not true after 0.2 s .*last observed: 7"):
        wait_until(lambda: 7, "queue empty", 0.2, 0.01, lambda n: n == 0)


def test_wait_until_treats_ignored_errors_as_not_yet_and_others_as_fatal() -> None:
    calls = itertools.count()

    def flaky() -> str:
        if next(calls) < 2:
            raise ConnectionError("refused")
        return "up"

    assert wait_until(flaky, "server up", 5, 0.001, ignore=(ConnectionError,)) == "up"
    with pytest.raises(ValueError):
        wait_until(lambda: int("x"), "never", 5, 0.001, ignore=(ConnectionError,))
