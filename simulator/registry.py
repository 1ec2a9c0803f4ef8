"""One registry class: names -> factories (policies in `simulator.policy`, routers in
`routers.registry`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from simulator.errors import InputError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories by name, in registration order. `get` of an unknown name raises `error` (an
    InputError: one line naming the name and the known ones)."""

    def __init__(self, kind: str, error: type[InputError] = InputError) -> None:
        self.kind = kind
        self.error = error
        self._factories: dict[str, F] = {}

    def register(self, name: str, factory: F | None = None):
        """Register `factory` under `name`; without a factory, a decorator that does. A name
        registered twice with different factories is a programming error (ValueError)."""

        def add(factory: F) -> F:
            if self._factories.get(name, factory) is not factory:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return add if factory is None else add(factory)

    def unregister(self, name: str) -> None:
        """Remove `name` (KeyError if it is not registered)."""
        del self._factories[name]

    def names(self) -> list[str]:
        return list(self._factories)

    def get(self, name: str) -> F:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(self._factories) or "none"
            raise self.error(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)
