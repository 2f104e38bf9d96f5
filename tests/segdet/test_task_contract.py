"""Every registered task keeps the Task contract of segdet/task.py, driven by the registry.

A task added to ``segdet.task.TASKS`` is tested here without being listed: the test takes the
first config in ``configs/`` of that task with built-in (synthetic) data, shrinks it to a few
images, and runs the whole contract on it: check, datasets and spec, a picklable collate, the
model, a loss with gradients, the evaluator's metrics and report, and prediction on a file.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from segdet.config import load_config
from segdet.task import TASKS, DataSpec, Evaluator, Task, build_task, get_task

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.synthetic.train_size=4",
    "data.synthetic.val_size=2",
    "data.batch_size=2",
    "data.num_workers=0",
    "train.epochs=1",
    "augment.mix_off_last_epochs=0",  # one epoch: mixing stays on (detection configs switch it off at the end)
    "train.device=cpu",
    "train.progress=false",
]


def _synthetic_config(task: str) -> Path:
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if raw.get("task", "segmentation") == task and raw.get("data", {}).get("kind", "synthetic") == "synthetic":
            return path
    raise AssertionError(f"task {task!r} has no config with built-in data in configs/; add one (the contract uses it)")


@pytest.fixture(scope="module", params=sorted(TASKS))
def built(request, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp(name)
    cfg = load_config(_synthetic_config(name), [*TINY, f"output_dir={out}"])
    task = build_task(cfg)
    task.check()
    train_ds, val_ds, spec = task.build_datasets()
    return name, task, train_ds, val_ds, spec, out


def test_registry_names_the_class_and_its_capabilities(built):
    name, task, *_ = built
    assert isinstance(task, Task) and task.name == name and get_task(name) is type(task)
    assert task.metrics and all(isinstance(m, str) for m in task.metrics)
    assert isinstance(task.batch_mixable, bool) and isinstance(task.ddp_find_unused_parameters, bool)


def test_datasets_come_with_their_spec(built):
    _, _, train_ds, val_ds, spec, _ = built
    assert isinstance(spec, DataSpec) and spec.num_classes == len(spec.classes) > 0
    assert len(train_ds) == 4 and len(val_ds) == 2
    sample = train_ds[0]
    assert isinstance(sample["image"], np.ndarray) and sample["image"].ndim == 3


def test_collate_is_picklable_and_batches_images(built):
    _, task, train_ds, _, spec, _ = built
    collate = task.collate_fn(spec)
    collate = pickle.loads(pickle.dumps(collate))  # loader workers receive it pickled
    batch = collate([train_ds[0], train_ds[1]])
    assert len(batch["image"]) == 2


def test_loss_is_finite_and_gives_gradients(built):
    _, task, train_ds, _, spec, _ = built
    torch.manual_seed(0)
    model = task.build_model(spec).train()
    batch = task.collate_fn(spec)([train_ds[0], train_ds[1]])
    loss, terms = task.loss(model, batch)
    assert loss.dim() == 0 and math.isfinite(float(loss.detach())) and loss.requires_grad
    assert terms and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in terms.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_evaluator_computes_every_declared_metric_and_writes_a_report(built, tmp_path):
    _, task, _, val_ds, spec, _ = built
    torch.manual_seed(0)
    model = task.build_model(spec).eval()
    evaluator = task.make_evaluator(spec, torch.device("cpu"))
    assert isinstance(evaluator, Evaluator)
    evaluator.reset()
    with torch.no_grad():
        evaluator.update(model, task.collate_fn(spec)([val_ds[0], val_ds[1]]))
    evaluator.sync()
    metrics = evaluator.compute()
    missing = [m for m in task.metrics if m not in metrics]
    assert missing == [], f"{task.name} declares metrics its evaluator does not compute: {missing}"
    assert all(isinstance(v, float) for v in metrics.values())
    table = evaluator.report(tmp_path)
    assert isinstance(table, str) and table and any(tmp_path.iterdir())


def test_predict_writes_outputs_for_an_image_file(built, tmp_path):
    _, task, _, _, spec, _ = built
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(image)
    torch.manual_seed(0)
    model = task.build_model(spec).eval()
    out = tmp_path / "out"
    out.mkdir()
    task.predict(model, spec, [image], out, torch.device("cpu"), None)
    assert any(p.name.startswith("photo") for p in out.iterdir()), sorted(p.name for p in out.iterdir())


def test_spec_round_trips_through_a_checkpoint(built):
    *_, spec, _ = built
    assert DataSpec.from_checkpoint(spec.to_checkpoint()) == spec
    assert DataSpec.from_checkpoint({"model": {}}) is None  # an old or foreign checkpoint: no class names


def test_unknown_task_name_is_one_clear_error():
    with pytest.raises(ValueError, match="task 'segmentaton' \\(did you mean 'segmentation'\\?\\) is not one of"):
        get_task("segmentaton")


@pytest.mark.parametrize(
    "classes,cat_ids,match",
    [
        ((), None, "non-empty sequence of class names"),
        ("cell", None, "non-empty sequence of class names"),
        (("a", "b"), (1,), "2 classes but 1 category ids"),
    ],
)
def test_bad_spec_is_refused(classes, cat_ids, match):
    with pytest.raises(ValueError, match=match):
        DataSpec(classes, cat_ids)
