"""``segdet init``: plan a training config from a dataset's fingerprint and a time budget.

As nnU-Net plans from a dataset fingerprint: :mod:`.layout` finds the pairs, :mod:`.fingerprint`
measures them, :mod:`.plan` decides (pure functions of the fingerprint and the timings),
:mod:`.timing` times real training steps on this machine, :mod:`.write` writes the commented
YAML, and :mod:`.command` runs the whole (:func:`init_config`).

Example:
    >>> from segdet.planner import init_config
    >>> path, plan = init_config("data/nuclei", "nuclei.yaml", minutes=10)  # doctest: +SKIP
"""

from .command import init_config
from .fingerprint import Fingerprint, fingerprint
from .layout import DataLayout, find_layout
from .plan import Candidate, DataPlan, Plan, Timing, plan_budget, plan_data

__all__ = [
    "Candidate",
    "DataLayout",
    "DataPlan",
    "Fingerprint",
    "Plan",
    "Timing",
    "find_layout",
    "fingerprint",
    "init_config",
    "plan_budget",
    "plan_data",
]
