import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset(rel: str) -> Path:
    """A folder of ../shared/datasets, or skip the test with the reason."""
    path = SHARED / rel
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the shared datasets are only on the development machines)")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test``), one torch thread per worker and per subprocess it starts:
    as many workers as cores, each with as many threads, would oversubscribe the machine."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own array cache, so tests neither share nor leave state."""
    monkeypatch.setenv("NEXNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """24 tiny synthetic polyp-like pairs (40-56 px), made once per test module."""
    from nexnet.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n=24, size_range=(40, 56))
