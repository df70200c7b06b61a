"""``shielded``: database calls that finish even when their caller is cancelled."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

__all__ = ["Shieldable", "shielded"]

P = ParamSpec("P")
T = TypeVar("T")


class Shieldable(Protocol):
    """An object whose database calls are ``shielded``: it tracks them in ``_inflight``
    and waits for them in its ``close()``."""

    _inflight: set[asyncio.Future[Any]]


def shielded(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Run the call in its own task and shield it from the caller's cancellation.

    A job task is cancelled to kill its processes, and a watch stream when its client
    goes away, wherever they happen to wait. A database call cut off mid-flight makes
    SQLAlchemy terminate the connection, which with aiosqlite can leave a close that never
    finishes; letting the (short) call complete keeps connections sane. The caller
    still sees its CancelledError at once; Store.close() waits for calls in flight.
    For methods of any ``Shieldable`` (the Store, the token store, shared rate buckets).
    """

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store: Shieldable = args[0]  # type: ignore[assignment]  # "self" of a method
        task = asyncio.ensure_future(method(*args, **kwargs))
        store._inflight.add(task)
        task.add_done_callback(_settle)
        task.add_done_callback(store._inflight.discard)
        return await asyncio.shield(task)

    return wrapper


def _settle(task: asyncio.Future[Any]) -> None:
    # Mark the outcome retrieved: a caller that was cancelled no longer awaits it.
    if not task.cancelled():
        task.exception()
