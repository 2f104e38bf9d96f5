"""Did-you-mean suggestions for error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, valid: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """``" (did you mean 'A' or 'B'?)"`` with the closest valid names, or ``""`` when none is close.

    A name that differs only in case comes first; matching ignores case.

    Example:
        >>> did_you_mean("HorizontalFlp", ["HorizontalFlip", "VerticalFlip"])
        " (did you mean 'HorizontalFlip'?)"
    """
    lowered = {v.lower(): v for v in sorted(set(map(str, valid)))}
    key = str(name).lower()
    close = [lowered[key]] if key in lowered else []
    for m in difflib.get_close_matches(key, list(lowered), n=n, cutoff=cutoff):
        if lowered[m] not in close:
            close.append(lowered[m])
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close[:n]) + "?)"
