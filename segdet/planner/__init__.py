"""``segdet init``: plan a training config from a dataset's fingerprint and a time budget.

As nnU-Net plans from a dataset fingerprint: :mod:`.layout` finds the pairs, :mod:`.fingerprint`
measures them, :mod:`.plan` decides (pure functions of the fingerprint and the timings),
and the plans are timed and written by the modules beside them.

Example:
    >>> from segdet.planner import find_layout, fingerprint, plan_data
    >>> data_plan = plan_data(fingerprint(find_layout("data/nuclei")))  # doctest: +SKIP
"""

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
    "plan_budget",
    "plan_data",
]
