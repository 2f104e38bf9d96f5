"""'Did you mean' suggestions without extra dependencies."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, adjacent transpositions)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def closest(name: str, valid: Iterable[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` valid names nearest to ``name``, closest first.

    A name qualifies within max(2, len(name) // 3) edits of ``name``, or, for a ``name`` of three
    or more characters, when one of the two contains the other.
    """
    name = name.lower()
    scored = []
    for cand in valid:
        d = edit_distance(name, cand)
        if d <= max(2, len(name) // 3) or (len(name) >= 3 and (name in cand or cand in name)):
            scored.append((d, cand))
    return [c for _, c in sorted(scored)[:limit]]


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    near = closest(name, valid)
    hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    return f"{hint}valid names: {valid}"
