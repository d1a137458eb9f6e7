"""The import direction of docs/architecture.md: a module imports only from layers below its own."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nexnet"

# Layers from the bottom up; units on one layer never import each other.
LAYERS = [
    {"_version", "errors", "io", "synthetic"},
    {"runtime", "plots", "outputs"},
    {"models", "data"},
    {"profile", "inference"},
    {"evaluation"},  # scores through inference's Predictor
    {"training"},  # validates with evaluation's metrics
    {"recipes", "serve"},
    {"cli"},
    {"__main__", "__init__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def unit_of(module: str) -> str:
    """``nexnet.training.trainer`` -> ``training``; ``nexnet`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Absolute nexnet modules that ``path`` imports, with their line numbers."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])  # the package a relative import starts from
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            found += [(t, node.lineno) for t in targets if t.startswith("nexnet")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("nexnet")]
    return found


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        source = unit_of(module) if not module.endswith("__main__") else "__main__"
        for target, line in imports_of(path):
            dest = unit_of(target) if unit_of(target) in RANK else "__init__"  # a name the package root defines
            if dest != source and RANK[dest] >= RANK[source]:
                bad.append(f"{path.relative_to(SRC.parent)}:{line} imports {target} ({dest} is not below {source})")
    return bad


def test_every_unit_has_a_layer():
    units = {
        p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    assert units <= set(RANK), f"add {sorted(units - set(RANK))} to LAYERS"


def test_imports_only_go_down():
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "nexnet"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "x.py").write_text("from ..training import train\nfrom ..errors import NexnetError\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    assert upward_imports() == ["nexnet/models/x.py:1 imports nexnet.training (training is not below models)"]
