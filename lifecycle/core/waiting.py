"""Wait until something is true, with a bound: the one wait-until of the project (code and tests),
built on tenacity. On time-out it says what it waited for and what it last observed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold within the bound; `observed` is the last value seen."""

    def __init__(self, what: str, timeout: float, observed: Any) -> None:
        self.observed = observed
        super().__init__(f"{what}: not true after {timeout:g} s (last observed: {observed!r})")


def wait_until(
    probe: Callable[[], T],
    what: str,
    timeout: float,
    interval: float = 0.1,
    done: Callable[[T], bool] = bool,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `probe` every `interval` s until `done(value)`; return that value.

    Exceptions of the `ignore` types count as "not yet" (e.g. connection refused while a server
    starts); any other exception propagates at once (e.g. the child process died).
    """
    observed: list[Any] = [None]

    def attempt() -> tuple[bool, T | None]:
        try:
            value = probe()
        except ignore as exc:
            observed[0] = exc
            return False, None
        observed[0] = value
        return done(value), value

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda outcome: not outcome[0]),
    )
    try:
        _, value = retrying(attempt)
    except RetryError:
        raise WaitTimeout(what, timeout, observed[0]) from None
    return value  # type: ignore[return-value]
