"""Values computed once per key by whichever thread asks first, while the others wait.

The lock's mirror answers pip and reads ahead in many threads at once; a page or a metadata
file must still be fetched only once, and a failure must reach every asker alike (a page that
failed for the read-ahead fails the same way for pip, which is then reported).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, Future[V]] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        """``make()``'s result for ``key`` (or its exception), computed by the first caller."""
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(make())
            except BaseException as exc:  # kept for every caller, raised below
                future.set_exception(exc)
        return future.result()

    def done(self, key: K) -> V | None:
        """The value for ``key`` if it is computed and did not fail; None otherwise."""
        with self._lock:
            future = self._futures.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()
