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
        future, owner = self._claim(key)
        if owner:
            _fill(future, make)
        return future.result()

    def start(
        self, key: K, make: Callable[[], V], run: Callable[[Callable[[], None]], object]
    ) -> None:
        """Like ``get`` without waiting: the first caller hands the computation to ``run`` (a
        pool's ``submit``); until it ends, ``get`` and ``wait`` wait for it."""
        future, owner = self._claim(key)
        if owner:
            try:
                run(lambda: _fill(future, make))
            except BaseException as exc:  # not even started: nobody may wait for it forever
                future.set_exception(exc)
                raise

    def _claim(self, key: K) -> tuple[Future[V], bool]:
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return future, False
            future = self._futures[key] = Future()
            return future, True

    def wait(self, key: K) -> V | None:
        """The value for ``key`` once computed (its exception raised); None if never asked."""
        with self._lock:
            future = self._futures.get(key)
        return None if future is None else future.result()

    def __len__(self) -> int:
        return len(self._futures)

    def done(self, key: K) -> V | None:
        """The value for ``key`` if it is computed and did not fail; None otherwise."""
        with self._lock:
            future = self._futures.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()


def _fill(future: Future[V], make: Callable[[], V]) -> None:
    try:
        future.set_result(make())
    except BaseException as exc:  # kept for every caller
        future.set_exception(exc)
