"""augment's public surface: the names of ``augment.__all__`` and the signatures of its callables.

``tests/augment/public_api.json`` records ``sorted(augment.__all__)`` and, for each exported
callable, ``str(inspect.signature(obj))``. A test fails when a name is added or removed or a
signature changes, so that an edit to the public API is made on purpose. After such an edit,
regenerate the file and commit it with the change::

    SEGDET_UPDATE_API=1 python -m pytest -q tests/augment/test_augment_public_api.py
"""

import inspect
import json
import os
from pathlib import Path

import pytest

import augment

API_FILE = Path(__file__).with_name("public_api.json")
UPDATE = "SEGDET_UPDATE_API=1 python -m pytest -q tests/augment/test_augment_public_api.py"


def _surface() -> dict:
    names = sorted(augment.__all__)
    signatures = {}
    for name in names:
        obj = getattr(augment, name)
        if callable(obj):
            signatures[name] = str(inspect.signature(obj))
    return {"names": names, "signatures": signatures}


@pytest.fixture(scope="module")
def recorded() -> dict:
    current = _surface()
    if os.environ.get("SEGDET_UPDATE_API") == "1":
        API_FILE.write_text(json.dumps(current, indent=2) + "\n")
    return json.loads(API_FILE.read_text())


def test_every_exported_name_exists():
    missing = [name for name in augment.__all__ if not hasattr(augment, name)]
    assert not missing, f"augment.__all__ lists names the package does not define: {missing}"
    assert len(set(augment.__all__)) == len(augment.__all__), "augment.__all__ lists a name twice"


def test_no_public_name_is_removed_or_added(recorded):
    current = _surface()["names"]
    removed = sorted(set(recorded["names"]) - set(current))
    added = sorted(set(current) - set(recorded["names"]))
    assert not removed, (
        f"augment no longer exports {removed}: that breaks code importing them. If this is on "
        f"purpose, update {API_FILE.name} with {UPDATE}"
    )
    assert not added, f"augment now exports {added}; record the new public names on purpose with {UPDATE}"


def test_no_signature_changes(recorded):
    current = _surface()["signatures"]
    changed = {
        name: f"{recorded['signatures'][name]} -> {sig}"
        for name, sig in current.items()
        if name in recorded["signatures"] and recorded["signatures"][name] != sig
    }
    assert not changed, (
        "public signatures of augment changed:\n"
        + "\n".join(f"  {name}{diff}" for name, diff in changed.items())
        + f"\nIf this is on purpose, update {API_FILE.name} with {UPDATE}"
    )
    unrecorded = sorted(set(current) - set(recorded["signatures"]))
    assert not unrecorded, f"signatures of {unrecorded} are not recorded; record them on purpose with {UPDATE}"
