"""One database thread: async code reaches the stores only through it.

SQLite calls block (a commit waits for an fsync, a related search reads the full-text
index), so none runs on the event loop. Every store call of the service goes to one
thread per database, in the order it was made: writers are serialized there, as the
inbox serializes its own on its own thread. The command line keeps calling the
synchronous stores directly.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, Generic, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


class DatabaseThread:
    """A single-thread executor for one database; calls run one at a time, in order."""

    def __init__(self, name: str = "store-db") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for the calls already handed in, then stop the thread."""
        self._executor.shutdown(wait=True)


class AsyncStore(Generic[S]):
    """The async face of a synchronous store: each call runs on the database thread.

    Subclasses name the store's methods that async code uses (same names, awaited);
    `call` runs a function of the store there, for work that reads or writes several
    times in one step (a related search, a webhook applied to the mirror).
    """

    def __init__(self, store: S, thread: DatabaseThread) -> None:
        self.sync = store
        self._thread = thread

    async def call(
        self, fn: Callable[Concatenate[S, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(store, *args, **kwargs)` on the database thread."""
        return await self._thread.run(fn, self.sync, *args, **kwargs)

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._thread.run(fn, *args, **kwargs)

    def close(self) -> None:
        self.sync.close()
