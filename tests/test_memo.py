"""Memo: one computation per key however many threads ask, failures shared."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wheelhouse.memo import Memo


def test_concurrent_askers_share_one_computation() -> None:
    memo: Memo[str, int] = Memo()
    calls = []
    gate = threading.Event()

    def make() -> int:
        calls.append(1)
        gate.wait(5)
        return 42

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(memo.get, "k", make) for _ in range(8)]
        time.sleep(0.1)
        assert memo.done("k") is None  # still being computed
        gate.set()
        assert [f.result() for f in futures] == [42] * 8
    assert len(calls) == 1
    assert memo.done("k") == 42
    assert memo.get("other", lambda: 7) == 7


def test_a_failure_reaches_every_asker_and_is_not_retried() -> None:
    memo: Memo[str, int] = Memo()
    calls = []

    def boom() -> int:
        calls.append(1)
        raise ValueError("no page")

    for _ in range(3):
        with pytest.raises(ValueError, match="no page"):
            memo.get("k", boom)
    assert len(calls) == 1
    assert memo.done("k") is None


def test_start_hands_the_work_over_and_waiters_get_its_result() -> None:
    memo: Memo[str, int] = Memo()
    with ThreadPoolExecutor(1) as pool:
        gate = threading.Event()
        pool.submit(gate.wait, 5)  # the pool is busy: the started work waits in its queue
        memo.start("k", lambda: 42, pool.submit)
        memo.start("k", lambda: 0, pool.submit)  # already claimed: nothing more is queued
        assert memo.done("k") is None
        gate.set()
        assert memo.wait("k") == 42
        assert memo.get("k", lambda: 0) == 42
    assert memo.wait("never") is None
    assert len(memo) == 1


def test_work_that_cannot_start_fails_its_waiters_instead_of_hanging_them() -> None:
    memo: Memo[str, int] = Memo()
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        memo.start("k", lambda: 42, pool.submit)
    with pytest.raises(RuntimeError):
        memo.wait("k")
