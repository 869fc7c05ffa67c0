"""How the property tests explore: the same examples on every CI run, new ones with --full.

By default (CI) each property test runs its own number of examples with
``derandomize=True``: the same examples every run, so CI costs the same and never finds a
failure by chance. ``pytest --full`` explores instead: ten times as many examples, drawn at
random from one seed for the whole run. The seed is printed at the end of the run (and in
the header); ``pytest --full --hypothesis-seed=N`` draws exactly the same examples again,
so whatever a run found can be replayed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis.internal.conjecture import providers
from hypothesis.internal.floats import float_to_int
from sortedcontainers import SortedSet

FULL_FACTOR = 10

# xdist's workers start after the controller has configured itself and inherit its
# environment: this is how they all learn the one seed the controller chose.
_SEED_VARIABLE = "JIT_HYPOTHESIS_SEED"

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Exploration:
    full: bool
    seed: int | None

    def examples(self, ci: int) -> int:
        """How many examples a test that runs ``ci`` examples in CI runs now."""
        return ci * FULL_FACTOR if self.full else ci

    def settings(self, ci_examples: int) -> Callable[[T], T]:
        """The hypothesis settings (and seed) for a property test of ``ci_examples``."""
        chosen = settings(
            max_examples=self.examples(ci_examples),
            deadline=None,
            derandomize=not self.full,
            # Replayed by seed, not from a database of earlier failures: the seed alone
            # says what a run drew.
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )

        def apply(test: T) -> T:
            test = chosen(test)
            return seed(self.seed)(test) if self.full else test

        return apply


def _without_local_constants() -> None:
    """Hypothesis mixes literals mined from the project's loaded modules into what it
    draws (about one draw in twenty). Which modules a run has imported then decides the
    examples: collecting one more test module, or moving code between modules, gave CI
    other examples than before. CI's examples must depend on the tests alone, so its runs
    draw from Hypothesis's own constants only; ``--full`` keeps the mined ones."""
    empty = providers.Constants(
        integers=SortedSet(),
        floats=SortedSet(key=float_to_int),
        bytes=SortedSet(),
        strings=SortedSet(),
    )
    providers._get_local_constants = lambda: empty  # type: ignore[attr-defined]


def configure(config: pytest.Config) -> None:
    if not config.getoption("--full"):
        _without_local_constants()
        return
    given = config.getoption("--hypothesis-seed", None) or os.environ.get(_SEED_VARIABLE)
    chosen = int(given) if given else random.SystemRandom().randrange(2**32)
    os.environ[_SEED_VARIABLE] = str(chosen)


def of(config: pytest.Config) -> Exploration:
    if not config.getoption("--full"):
        return Exploration(full=False, seed=None)
    return Exploration(full=True, seed=int(os.environ[_SEED_VARIABLE]))


def describe(config: pytest.Config) -> str | None:
    if not config.getoption("--full"):
        return None
    number = os.environ[_SEED_VARIABLE]
    return (
        f"property tests explored with hypothesis seed {number} "
        f"(replay: pytest --full --hypothesis-seed={number} ...)"
    )
