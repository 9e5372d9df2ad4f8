"""A registry of named parts (samplers, metrics): a new part is one class and one decorator.

    SAMPLERS = Registry("sampler")

    @SAMPLERS.register("mrsampler")
    class MRSampler(BaseSampler): ...

    SAMPLERS["mrsampler"]          # the class; an unknown name raises, naming the valid ones
    SAMPLERS.names()               # in the order of registration

A part registered from outside the package (a test, a user's script) is as good as a built-in:
everything that lists parts (the options' checks, the tables, the help) reads the registry.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from uir.common.checks import check_choice

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, key: str | None = None):
        self.kind = kind  # what a part is, for messages ("sampler")
        self.key = key or kind  # the option that names one ("sde.algorithm")
        self._parts: dict[str, T] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator: register the part under `name` (and set its `name`). A name already taken
        is an error unless `replace` (to swap a built-in for a variant of one's own)."""

        def add(part: T) -> T:
            if not name or not isinstance(name, str):
                raise ValueError(f"{self.kind} registry: expected a non-empty name, got {name!r}")
            if name in self._parts and not replace and self._parts[name] is not part:
                raise ValueError(f"{self.kind} registry: {name!r} is taken by {self._parts[name]!r}; "
                                 f"choose another name or pass replace=True")
            part.name = name  # type: ignore[attr-defined]
            self._parts[name] = part
            return part

        return add

    def unregister(self, name: str) -> None:
        """Remove a part (a test's own part, when the test is done)."""
        self._parts.pop(name, None)

    def __getitem__(self, name: str) -> T:
        check_choice(self.key, name, self._parts)
        return self._parts[name]

    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def names(self) -> tuple[str, ...]:
        return tuple(self._parts)

    def items(self) -> list[tuple[str, T]]:
        return list(self._parts.items())

    def values(self) -> list[T]:
        return list(self._parts.values())
