"""The public surface of losses/: exported names, call signatures and registry names.

``tests/losses/public_api.json`` records

- ``__all__``: ``losses.__all__``, sorted;
- ``signatures``: ``str(inspect.signature(obj))`` of every exported callable, and of the
  ``forward`` of every exported ``nn.Module`` (as ``"DiceLoss.forward"``);
- ``LOSSES``: the names of ``losses.LOSSES``, which configs refer to.

These tests fail when any of them changes, so that removing a name or changing a signature is a
decision and not an accident. After an intended change, regenerate the file and commit it with
the change::

    SEGDET_UPDATE_API=1 python -m pytest -q tests/losses/test_losses_public_api.py
"""

import difflib
import inspect
import json
import os
from pathlib import Path

import pytest
from torch import nn

import losses

API_FILE = Path(__file__).with_name("public_api.json")
HOW = (
    "If the change is intended, update tests/losses/public_api.json on purpose: "
    "SEGDET_UPDATE_API=1 python -m pytest -q tests/losses/test_losses_public_api.py, and commit it with the change."
)


def current_api() -> dict:
    signatures = {}
    for name in sorted(losses.__all__):
        obj = getattr(losses, name)
        if callable(obj):
            signatures[name] = str(inspect.signature(obj))
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            signatures[f"{name}.forward"] = str(inspect.signature(obj.forward))
    return {"__all__": sorted(losses.__all__), "signatures": signatures, "LOSSES": sorted(losses.LOSSES)}


def _changed_parts(old: str | None, new: str | None) -> str:
    """The parameters that differ between two signature strings, as 'was [...], now [...]'."""
    if old is None or new is None:
        return "added" if old is None else "removed"
    a, b = old.split(", "), new.split(", ")
    ops = difflib.SequenceMatcher(a=a, b=b).get_opcodes()
    return "; ".join(
        f"was [{', '.join(a[i1:i2])}], now [{', '.join(b[j1:j2])}]" for tag, i1, i2, j1, j2 in ops if tag != "equal"
    )


@pytest.fixture(scope="module")
def recorded() -> dict:
    if os.environ.get("SEGDET_UPDATE_API") == "1":
        API_FILE.write_text(json.dumps(current_api(), indent=2) + "\n")
    return json.loads(API_FILE.read_text())


def test_all_names_exist_once():
    missing = [n for n in losses.__all__ if not hasattr(losses, n)]
    assert missing == [], f"losses.__all__ names {missing}, which losses does not define"
    assert len(set(losses.__all__)) == len(losses.__all__), "losses.__all__ lists a name twice"


def test_no_exported_name_is_removed(recorded):
    removed = sorted(set(recorded["__all__"]) - set(losses.__all__))
    assert removed == [], f"losses no longer exports {removed}. {HOW}"


def test_every_exported_name_is_recorded(recorded):
    added = sorted(set(losses.__all__) - set(recorded["__all__"]))
    assert added == [], f"losses exports {added}, which public_api.json does not record. {HOW}"


def test_signatures_are_unchanged(recorded):
    now = current_api()["signatures"]
    old = recorded["signatures"]
    changed = [
        f"{name}: {_changed_parts(old.get(name), now.get(name))}"
        for name in sorted(set(now) | set(old))
        if now.get(name) != old.get(name)
    ]
    assert changed == [], "public signatures changed:\n  " + "\n  ".join(changed) + f"\n{HOW}"


def test_registry_names_are_unchanged(recorded):
    now = sorted(losses.LOSSES)
    assert now == recorded["LOSSES"], f"losses.LOSSES names changed from {recorded['LOSSES']} to {now}. {HOW}"
