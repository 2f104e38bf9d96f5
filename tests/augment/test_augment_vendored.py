"""augment/ copied into another project under another name mixes exactly like the installed one.

The copy (``myaugment``) is imported in a fresh interpreter (``python -I``: no PYTHON* variables,
no user site, no working directory on ``sys.path``) whose ``sys.path`` starts with the copy's
parent and whose meta path refuses ``segdet``, ``augment`` and ``torch`` (the sample-level
mixers need numpy and cv2 only; torch is for ``augment.batch``). An absolute import of the
package by its own name, or of segdet, fails.
"""

import inspect
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import augment

SOURCE = Path(augment.__file__).resolve().parent
SEEDS = (0, 1, 2, 3)
SHAPES = ("rect", "fmix")
OPTIONS = {"min_visibility": 0.3}  # some cut boxes are dropped, the others shrink


def make_samples():
    """Two 16x20 samples with a mask (some ignore_index pixels) and two boxes each."""
    rng = np.random.default_rng(7)
    samples = []
    for k in range(2):
        mask = rng.integers(0, 3, (16, 20)).astype(np.int64)
        mask[:2, :3] = 255
        samples.append(
            {
                "image": rng.integers(0, 256, (16, 20, 3), dtype=np.uint8),
                "mask": mask,
                "bboxes": np.array([[1, 2, 9, 12], [6 + k, 4, 19, 15]], np.float32),
                "labels": np.array([k, 2], np.int64),
            }
        )
    return samples


CHILD = (
    textwrap.dedent(
        """
    import json
    import sys

    BLOCKED = {"segdet", "augment", "torch"}


    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the vendored augment package must not import it")
            return None


    loaded_before = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    sys.meta_path.insert(0, Blocker())
    sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p]

    import myaugment  # first, so that a blocked import fails before numpy is loaded
    import numpy as np
    """
    )
    + inspect.getsource(make_samples)  # the child mixes the same inputs
    + textwrap.dedent(
        """
    results = {}
    options = json.loads(sys.argv[4])
    for shape in json.loads(sys.argv[2]):
        for seed in json.loads(sys.argv[3]):
            out = myaugment.CutMix(p=1.0, shape=shape, **options)(make_samples(), np.random.default_rng(seed))
            results[f"{shape}/{seed}"] = {
                k: [str(np.asarray(v).dtype), list(np.asarray(v).shape), np.asarray(v).tolist()] for k, v in out.items()
            }
    print(json.dumps({
        "results": results,
        "file": myaugment.__file__,
        "module": myaugment.CutMix.__module__,
        "blocked_loaded": loaded_before + sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED),
    }))
    """
    )
)


def _run_vendored(tmp_path, prepend_to_init=""):
    vendored = tmp_path / "myaugment"
    shutil.copytree(SOURCE, vendored, ignore=shutil.ignore_patterns("__pycache__"))
    if prepend_to_init:
        init = vendored / "__init__.py"
        init.write_text(prepend_to_init + init.read_text())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path), json.dumps(SHAPES), json.dumps(SEEDS), json.dumps(OPTIONS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_vendored_copy_cuts_and_mixes_the_same(tmp_path):
    proc = _run_vendored(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["blocked_loaded"] == []
    assert Path(out["file"]).resolve().parent == (tmp_path / "myaugment").resolve()
    assert out["module"] == "myaugment.cutmix"
    mixed, counts = 0, set()
    for shape in SHAPES:
        for seed in SEEDS:
            samples = make_samples()
            expected = augment.CutMix(p=1.0, shape=shape, **OPTIONS)(samples, np.random.default_rng(seed))
            got = out["results"][f"{shape}/{seed}"]
            assert sorted(got) == sorted(expected) and {"image", "mask", "bboxes", "labels"} <= set(got)
            for key, value in expected.items():
                dtype, shape_, values = got[key]
                value = np.asarray(value)
                assert (dtype, tuple(shape_)) == (str(value.dtype), value.shape), key
                np.testing.assert_array_equal(np.asarray(values, dtype=value.dtype).reshape(value.shape), value)
            mixed += not np.array_equal(expected["mask"], samples[0]["mask"])
            counts.add(len(expected["bboxes"]))
    assert mixed >= len(SHAPES) * len(SEEDS) // 2  # the cases compare real cuts, not copies of the primary
    assert len(counts) > 1  # and boxes kept and dropped


def test_an_absolute_self_import_fails_the_vendored_copy(tmp_path):
    proc = _run_vendored(tmp_path, prepend_to_init="import augment.regions\n")
    assert proc.returncode != 0
    assert "augment is blocked" in proc.stderr
