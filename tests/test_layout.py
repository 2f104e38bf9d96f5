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
