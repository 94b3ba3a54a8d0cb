"""The one expiry rule of the per-process caches (network/cache.py)."""

from __future__ import annotations

import threading
from typing import Any

from network.cache import Cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reader(values: list[Any]) -> Any:
    calls: list[Any] = []

    def read(previous: Any) -> Any:
        calls.append(previous)
        return values[len(calls) - 1]

    read.calls = calls  # type: ignore[attr-defined]
    return read


def test_an_entry_is_served_for_max_age_then_read_again_with_the_previous_value():
    clock = Clock()
    cache: Cache[str, str] = Cache(max_age=0.5, monotonic=clock)
    read = _reader(["a", "b"])
    assert cache.get("k", read) == "a"
    clock.now += 0.49
    assert cache.get("k", read) == "a"
    clock.now += 0.01
    assert cache.get("k", read) == "b"
    assert read.calls == [None, "a"]


def test_a_miss_lives_for_miss_age_and_a_zero_lifetime_reads_every_time():
    clock = Clock()
    cache: Cache[str, str] = Cache(max_age=0, miss_age=5.0, monotonic=clock)
    read = _reader([None, "found", "again"])
    assert cache.get("k", read) is None
    clock.now += 4.9
    assert cache.get("k", read) is None and cache.has_fresh("k")
    clock.now += 0.1
    assert cache.get("k", read) == "found"
    assert cache.get("k", read) == "again"  # max_age 0: never served from the cache


def test_while_one_caller_reads_the_others_keep_the_stale_entry_for_stale_for():
    clock = Clock()
    cache: Cache[str, str] = Cache(max_age=0.5, stale_for=0.5, monotonic=clock)
    cache.put("k", "old")
    clock.now += 0.6
    inside, release = threading.Event(), threading.Event()

    def slow(_previous: Any) -> str:
        inside.set()
        release.wait(5)
        return "new"

    reader = threading.Thread(target=cache.get, args=("k", slow))
    reader.start()
    assert inside.wait(5)
    assert cache.get("k", _reader(["unused"])) == "old"  # one reader at a time
    clock.now += 0.5  # past max_age + stale_for: too old to keep meanwhile
    assert cache.get("k", _reader(["mine"])) == "mine"
    release.set()
    reader.join(5)


def test_without_stale_for_the_stale_entry_is_kept_as_long_as_the_read_takes_and_expire_forces_a_read():
    clock = Clock()
    cache: Cache[str, str] = Cache(max_age=0.5, monotonic=clock)
    cache.put("k", "old")
    cache.expire("k")
    assert not cache.has_fresh("k") and cache.peek("k") == "old"
    assert cache.get("k", _reader(["new"])) == "new"


def test_the_size_bound_drops_the_entry_read_longest_ago():
    clock = Clock()
    cache: Cache[int, int] = Cache(max_age=60, size=3, monotonic=clock)
    for i in range(5):
        cache.put(i, i)
    assert len(cache) == 3 and cache.peek(0) is None and cache.peek(4) == 4
