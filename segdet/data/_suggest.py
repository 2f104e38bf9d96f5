"""Did-you-mean suggestions for error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, valid: Iterable[str], n: int = 3) -> str:
    """``" (did you mean 'A', 'B'?)"`` with the closest valid names, or ``""`` when none is close."""
    valid = sorted(set(valid))
    lowered = {v.lower(): v for v in valid}
    close = []
    if name.lower() in lowered:
        close.append(lowered[name.lower()])
    for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6):
        if lowered[m] not in close:
            close.append(lowered[m])
    if not close:
        return ""
    return " (did you mean " + ", ".join(repr(c) for c in close[:n]) + "?)"
