"""One way for tests to wait: poll a condition until it holds or fail after a generous bound,
saying what was awaited and the last value seen."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Optional, Tuple, Type, Union

import pytest

Message = Union[str, Callable[[], str]]


def _describe(message: Message, timeout_s: float, last: Any) -> str:
    text = message() if callable(message) else message
    return f"timed out after {timeout_s} s waiting for {text}; last: {last!r}"


def wait_for(condition: Callable[[], Any], timeout_s: float, message: Message = "condition",
             interval_s: float = 0.25, ignore: Tuple[Type[BaseException], ...] = ()) -> Any:
    """Call ``condition`` until it returns something truthy, and return that. Exceptions in
    ``ignore`` (a server not up yet) count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = condition()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(_describe(message, timeout_s, last), pytrace=False)
        time.sleep(interval_s)


async def until(condition: Callable[[], Any], timeout_s: float = 20.0, message: Message = "condition",
                interval_s: float = 0.05, step: Optional[Callable[[], Awaitable[Any]]] = None) -> Any:
    """The async form: ``condition`` may be sync or async; ``step`` (awaited between tries)
    drives the code under test instead of sleeping."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = condition()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(_describe(message, timeout_s, last), pytrace=False)
        if step is not None:
            await step()
        else:
            await asyncio.sleep(interval_s)
