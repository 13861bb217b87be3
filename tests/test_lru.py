"""The shared bounded LRU of the sphere, mask and smoothing caches."""

from __future__ import annotations

from lazyspheres._lru import LRU


def test_least_recently_used_item_goes_first():
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    cache.clear()
    assert cache.get("a") is None
