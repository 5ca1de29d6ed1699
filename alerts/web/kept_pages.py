"""Pages and bodies kept in memory once rendered, so that a page is rendered again only when
what it shows has changed.

`Kept` holds values by key, the most recently used first, shared by the threads that serve.
`Rendered` keeps bodies (with their ETag) under everything they were made from: the open
feeds' pages and documents. `Filled` keeps a page that differs between requests only in a
value of the request's own, such as the signed token in a link page's form: rendered once
with a placeholder where that value goes, and filled in for each request, so that a mail
filter opening the same post's vote link for each of ten thousand residents renders it once.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar


def etag(body: bytes) -> str:
    """A strong ETag over `body`."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


V = TypeVar("V")


class Kept(Generic[V]):
    """Values by key, the most recently used `size` of them, safe to share between threads."""

    def __init__(self, size: int = 200) -> None:
        self._size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V],
            fresh: Callable[[V], bool] = lambda _: True) -> V:
        """The kept value if it is `fresh`, else `make()`'s, kept in its place."""
        with self._lock:
            found = self._values.get(key)
            if found is not None and fresh(found):
                self._values.move_to_end(key)
                return found
        made = make()  # outside the lock: another thread may make the same meanwhile
        with self._lock:
            self._values[key] = made
            self._values.move_to_end(key)
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return made


class Rendered(Kept[tuple[bytes, str]]):
    """Bodies (with their ETag) by everything they were made from. The key must hold every
    input of the body: the lookup compares keys by equality, so the same inputs give the
    same bytes and any change renders anew."""

    def body(self, key: Hashable, make: Callable[[], bytes]) -> tuple[bytes, str]:
        def made() -> tuple[bytes, str]:
            body = make()
            return body, etag(body)

        return self.get(key, made)


# A value goes into a kept page as it is only if escaping (HTML, attribute or URL) would leave
# it so: the signed tokens are made of these characters.
_PLAIN = re.compile(r"[A-Za-z0-9._~-]*")


class Filled:
    """Pages rendered once under everything they show but the request's own `values`, each
    rendered as a placeholder and filled in per request."""

    def __init__(self, size: int = 200) -> None:
        self._kept = Kept[tuple[str, tuple[str, ...]]](size)
        self._marker = uuid.uuid4().hex  # no page's own text holds it

    def page(self, key: Hashable, render: Callable[[Mapping[str, str]], str],
             values: Mapping[str, str]) -> str:
        """`render(values)`'s page: `render` must make it from `key` and `values` alone. A
        value that escaping would change is rendered afresh, not filled in."""
        if not all(_PLAIN.fullmatch(value) for value in values.values()):
            return render(values)
        names = tuple(sorted(values))

        def made() -> tuple[str, tuple[str, ...]]:
            holes = {name: f"{self._marker}-{name}" for name in names}
            return render(holes), names

        kept, kept_names = self._kept.get((key, names), made)
        for name in kept_names:
            kept = kept.replace(f"{self._marker}-{name}", values[name])
        return kept
