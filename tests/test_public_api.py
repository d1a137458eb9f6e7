"""The public API (``nexnet.__all__`` and the training entry points the README's Python section uses)
says in its docstrings what each function takes, returns and raises."""

import inspect

import pytest

import nexnet
from nexnet import training

FUNCTIONS = [
    nexnet.create_model, nexnet.from_pretrained, nexnet.register_model, nexnet.save_pretrained,
    nexnet.Predictor.load, nexnet.Predictor.from_pretrained, nexnet.Predictor.__call__,
    nexnet.Predictor.probabilities, training.resolve, training.resolve_run, training.train,
]  # fmt: skip


def _parameters(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__qualname__)
def test_each_public_function_documents_its_arguments(fn):
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc, f"{fn.__qualname__}: no Args: section"
    missing = [p for p in _parameters(fn) if p not in doc]
    assert missing == [], f"{fn.__qualname__}: its docstring does not name {missing}"
    assert "Returns:" in doc or "Raises:" in doc, f"{fn.__qualname__}: says neither what it returns nor raises"


def test_every_public_name_has_a_docstring():
    undocumented = [
        name for name in nexnet.__all__ if name != "__version__" and not inspect.getdoc(getattr(nexnet, name))
    ]
    assert undocumented == []
