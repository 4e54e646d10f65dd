"""A deterministic pairwise-covering sample of option combinations, shared by the option
parity tests (test_layer_options.py: the NumPy layers; test_torch_modules.py: the torch
drop-ins).  ``factors`` maps each option to its values; ``valid(case)`` says whether a
combination exists (e.g. proj_size > 0 for an LSTM only)."""

from __future__ import annotations

import itertools


def all_cases(factors: dict, valid) -> list:
    """Every valid combination, in product order, as dicts."""
    names = list(factors)
    return [c for c in (dict(zip(names, vals)) for vals in itertools.product(*factors.values()))
            if valid(c)]


def pairs(case: dict) -> frozenset:
    """The pairs of (option, value) items that one case covers."""
    return frozenset(itertools.combinations(case.items(), 2))


def required_pairs(factors: dict, valid) -> set:
    """Every pair of option values that some valid case has."""
    return set().union(*(pairs(c) for c in all_cases(factors, valid)))


def pairwise_cases(factors: dict, valid, reverse: bool = False) -> list:
    """A greedy covering sample: repeatedly take the valid case that covers the most pairs
    not yet covered (ties: the first in product order, or the last with ``reverse``, so
    that two dtypes can get different samples)."""
    pool = [(c, pairs(c)) for c in all_cases(factors, valid)]
    if reverse:
        pool = pool[::-1]
    todo, chosen = required_pairs(factors, valid), []
    while todo:
        best, covered = max(pool, key=lambda cp: len(cp[1] & todo))  # max keeps the first
        chosen.append(best)
        todo -= covered
    return chosen


def assert_covers(cases: list, factors: dict, valid) -> None:
    """The sample has only valid cases, no duplicates, every pair of option values and
    so every single value."""
    assert all(valid(c) for c in cases)
    assert len({tuple(c.values()) for c in cases}) == len(cases)
    covered = set().union(*(pairs(c) for c in cases))
    missing = required_pairs(factors, valid) - covered
    assert not missing, f"pairs not covered: {sorted(missing, key=str)}"
    for name, values in factors.items():
        assert {c[name] for c in cases} == set(values), name
