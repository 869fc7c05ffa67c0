"""Counting what reaches a running bot's Bolt app: every request handed to it and every
listener function (ack and lazy) it runs, by wrapping the real ones in place.

So "no handler ran" is measured where handlers are entered, not inferred from what a
handler would have written."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from slack_bolt import App


class ListenerCalls:
    def __init__(self, app: App) -> None:
        self._counts = Counter[str]()
        self._lock = threading.Lock()
        # The HTTP server looks up `dispatch` on each request, so an instance attribute
        # takes its place for every request from now on.
        app.dispatch = self._counting("dispatch", app.dispatch)  # type: ignore[method-assign]
        # Bolt keeps its listeners in a private list; each one calls the functions it holds
        # (Bolt reads their argument names through functools.wraps' __wrapped__).
        for listener in app._listeners:
            listener.ack_function = self._counting(  # type: ignore[attr-defined]
                "ack",
                listener.ack_function,  # type: ignore[attr-defined]
            )
            listener.lazy_functions = [  # type: ignore[attr-defined]
                self._counting("lazy", f)
                for f in listener.lazy_functions  # type: ignore[attr-defined]
            ]

    def _counting(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        name = f"{kind} {getattr(function, '__name__', function)}"

        @functools.wraps(function)
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._counts[name] += 1
            return function(*args, **kwargs)

        return counted

    def counts(self) -> Counter[str]:
        """Calls so far, by ``"dispatch dispatch"``, ``"ack <function>"``, ``"lazy <function>"``."""
        with self._lock:
            return Counter(self._counts)

    def total(self) -> int:
        return sum(self.counts().values())
