"""One small generic registry for tasks, sources, model backends, paraphrase backends...

Heavy backends are registered lazily as "module:attr" strings so that `import negbench`
never imports transformers or open_clip; the string is resolved on first lookup.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from negbench.core.errors import UnknownNameError

T = TypeVar("T")


def resolve_import_string(target: str) -> Any:
    """'package.module:attr' -> the attribute, imported now."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"lazy registry target {target!r} must look like 'module:attr'")
    return getattr(importlib.import_module(module_name), attr)


class Registry(Generic[T]):
    """Name -> object (or lazy 'module:attr'). `kind` words the error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    @classmethod
    def of(cls, kind: str, entries: dict[str, Any]) -> "Registry":
        """A registry filled from {name: object or 'module:attr'}, e.g. readers registered lazily."""
        registry = cls(kind)
        for name, obj in entries.items():
            registry.register(name, obj)
        return registry

    def register(self, name: str, obj: T | str | None = None, *, overwrite: bool = False):
        """Register `obj` under `name`; without obj, acts as a decorator."""
        if obj is None:
            def decorator(fn):
                self.register(name, fn, overwrite=overwrite)
                return fn
            return decorator
        if name in self._entries and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):  # lazy: resolve once, keep the object
            entry = resolve_import_string(entry)
            self._entries[name] = entry
        return entry

    def unknown_message(self, name: str) -> str:
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} available: {', '.join(names) or '(none)'}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


Factory = Callable[..., Any]
