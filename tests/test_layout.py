"""The dependency direction of DESIGN.md: losses/ and augment/ never import segdet."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", ["losses", "augment"])
def test_package_never_imports_segdet(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    offenders = [str(f.relative_to(ROOT)) for f in files if "segdet" in _imported_roots(f)]
    assert offenders == [], f"{package}/ must not import segdet: {offenders}"


def test_losses_import_torch_only():
    allowed = {"torch", "losses"} | set(sys.stdlib_module_names)
    for f in sorted((ROOT / "losses").rglob("*.py")):
        extra = _imported_roots(f) - allowed
        assert not extra, (
            f"{f.relative_to(ROOT)} imports {sorted(extra)}; losses/ depends on torch and the standard library alone"
        )


def test_detector_catches_a_segdet_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from segdet.config import load_config\n")
    assert "segdet" in _imported_roots(bad)


# --- the floors of segdet/ (docs/DESIGN.md): a module imports its own floor and the ones below -----
#: bottom first; a module belongs to the floor of its longest listed prefix
FLOORS: list[tuple[str, ...]] = [
    (  # base: files, names, config, checkpoints, colours
        "segdet._atomic",
        "segdet._files",
        "segdet._images",
        "segdet._suggest",
        "segdet.checkpoint",
        "segdet.config",
        "segdet.palette",
    ),
    ("segdet.task",),  # the Task / Evaluator / DataSpec contracts and the task registry
    ("segdet.data",),  # dataset sources, the albumentations pipeline builder, the mixers
    ("segdet.segmentation", "segdet.detection"),  # the task slices; neither imports the other
    ("segdet.engine",),  # the training loop, validation, DDP, eval / predict commands
    ("segdet.planner",),  # segdet init: fingerprint, plan, timing of real steps, the commented YAML
    ("segdet.preview", "segdet.cli", "segdet.__main__"),  # the front door
]
SLICES = FLOORS[3]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module: str) -> tuple[int, str] | None:
    best = None
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (level, prefix)
    return best


def _segdet_imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every segdet import in the file, at module level or inside functions."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "segdet"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "segdet":
                out.append((node.lineno, target))
    return out


def _segdet_files() -> list[Path]:
    return sorted(p for p in (ROOT / "segdet").rglob("*.py"))


def test_every_segdet_module_has_a_floor():
    unplaced = [_module_name(f) for f in _segdet_files() if f.name != "__init__.py" or f.parent.name != "segdet"]
    unplaced = [m for m in unplaced if _floor(m) is None]
    assert unplaced == [], f"add these modules to a floor in FLOORS (and to docs/DESIGN.md): {unplaced}"


def test_no_segdet_module_imports_a_floor_above_it_or_the_other_slice():
    bad = []
    for f in _segdet_files():
        source = _module_name(f)
        here = _floor(source)
        if here is None:
            continue
        for line, target in _segdet_imports(f):
            there = _floor(target)
            if there is None or target == "segdet":
                continue
            if there[0] > here[0]:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {target} (floor {there[0]} > {here[0]})")
            elif here[0] == there[0] and here[1] in SLICES and there[1] != here[1]:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports the other slice {target}")
    assert bad == [], "imports against the floor plan of docs/DESIGN.md:\n" + "\n".join(bad)


def test_floor_check_catches_an_upward_and_a_sideways_import(tmp_path, monkeypatch):
    fake = tmp_path / "segdet" / "data"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("from segdet.engine import train\nfrom ..task import Task\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    imports = _segdet_imports(fake / "x.py")
    assert imports == [(1, "segdet.engine"), (2, "segdet.task")]
    assert _floor("segdet.engine.trainer")[0] > _floor("segdet.data.x")[0]
    assert _floor("segdet.detection.task")[1] != _floor("segdet.segmentation.model")[1]
