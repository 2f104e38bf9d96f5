"""losses/ copied into another project under another name works with torch alone.

The copy (``mylosses``) is imported in a fresh interpreter (``python -I``: no PYTHON* variables,
no user site, no working directory on ``sys.path``) whose ``sys.path`` starts with the copy's
parent and whose meta path refuses ``segdet``, ``losses``, ``albumentations`` and ``cv2``. An
absolute import of the package by its own name, or of segdet's other dependencies, fails.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

import losses

SOURCE = Path(losses.__file__).resolve().parent

CHILD = textwrap.dedent(
    """
    import json
    import sys

    BLOCKED = {"segdet", "losses", "albumentations", "cv2"}


    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the vendored loss package must not import it")
            return None


    loaded_before = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    sys.meta_path.insert(0, Blocker())
    sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p]

    import mylosses  # first, so that a blocked import fails before torch is loaded
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[0, 0] = 255
    value = mylosses.DiceLoss("multiclass", ignore_index=255)(x, y)
    print(json.dumps({
        "value": float(value),
        "file": mylosses.__file__,
        "module": mylosses.DiceLoss.__module__,
        "blocked_loaded": loaded_before + sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED),
    }))
    """
)


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[0, 0] = 255
    return x, y


def _run_vendored(tmp_path, prepend_to_init=""):
    vendored = tmp_path / "mylosses"
    shutil.copytree(SOURCE, vendored, ignore=shutil.ignore_patterns("__pycache__"))
    if prepend_to_init:
        init = vendored / "__init__.py"
        init.write_text(prepend_to_init + init.read_text())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_vendored_copy_computes_the_same_dice(tmp_path):
    proc = _run_vendored(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["blocked_loaded"] == []
    assert Path(out["file"]).resolve().parent == (tmp_path / "mylosses").resolve()
    assert out["module"] == "mylosses.region"
    x, y = _inputs()
    assert out["value"] == float(losses.DiceLoss("multiclass", ignore_index=255)(x, y))


def test_an_absolute_self_import_fails_the_vendored_copy(tmp_path):
    proc = _run_vendored(tmp_path, prepend_to_init="import losses.constants\n")
    assert proc.returncode != 0
    assert "losses is blocked" in proc.stderr
