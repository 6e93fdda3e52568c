"""Values kept in this process for a while: the one way the project caches what it looked up.

Each use makes one ``Kept`` with its own name, lifetime and bound, next to the code that
fills it and says why the lifetime is safe (an API key: 5 s, a species code: 10 s, ...). A
``Kept`` belongs to one process: another process (another web worker, a listener) does not
see it forget, so every user states how soon the others catch up.

Why not Django's cache framework (``CACHES``): its per-process backend, LocMemCache, pickles
every value on ``set`` and unpickles it on every ``get`` (a model instance, on the REST and
HL7 hot paths, where the lookup saved is itself ~100 µs), its ``clear()`` empties everything
in it, DRF's rate-limit counters included (integrations/api/auth.py), and a deployment that
points ``CACHES`` at Redis would silently turn "forgotten at once in this process" into
something else. Here a value is kept as it is, forgetting is per use, and ``clear_all()`` is
the one hook tests call (tests/conftest.py) without knowing what is kept where.

Reads and writes are single dict operations (atomic under the GIL): listener threads share a
``Kept`` without a lock; a value set twice by two threads at once is set twice, harmlessly.
"""

import time
from collections.abc import Hashable
from typing import Any

_MISSING = object()
_ALL: list["Kept"] = []  # every Kept made, for clear_all


class Kept:
    """Up to ``most`` values, each kept ``seconds`` after it is set (None: until forgotten).
    Full, it is emptied rather than kept in order: a user's set of keys is small, and one
    that outgrows ``most`` is someone trying keys, not the working set."""

    def __init__(self, name: str, *, seconds: float | None, most: int = 1000) -> None:
        self.name, self.seconds, self.most = name, seconds, most
        # Any: each Kept holds its own kind of value (a client, a code), one per user module.
        self._values: dict[
            Hashable, tuple[float | None, Any]
        ] = {}  # key -> (monotonic deadline or None, value)
        _ALL.append(self)

    def __repr__(self) -> str:
        return f"<Kept {self.name}: {len(self._values)} values, {self.seconds} s>"

    def __len__(self) -> int:
        return len(self._values)  # expired values included, until set over or forgotten

    def get(self, key: Hashable, default: Any = None) -> Any:
        kept = self._values.get(key)
        if kept is None or (kept[0] is not None and kept[0] <= time.monotonic()):
            return default
        return kept[1]

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def set(self, key: Hashable, value: Any) -> None:
        if len(self._values) >= self.most and key not in self._values:
            self._values.clear()
        deadline = None if self.seconds is None else time.monotonic() + self.seconds
        self._values[key] = (deadline, value)

    def forget(self, key: Hashable = _MISSING, **signal_arguments: object) -> None:
        """Forget ``key``, or everything (also usable as a signal receiver: it takes and
        ignores the signal's arguments, and forgets everything)."""
        if key is _MISSING:
            self._values.clear()
        else:
            self._values.pop(key, None)


def clear_all() -> None:
    """Forget everything every ``Kept`` holds (tests start from nothing kept)."""
    for kept in _ALL:
        kept.forget()
