import numpy as np
import torch
from conftest import shared_dataset
from layouts import make_kvasir

import nexnet.data.cache as cache_module
from nexnet.data import Augment, BatchLoader, build_arrays, get_adapter


def test_array_cache_is_built_once_then_read_without_decoding(tmp_path, monkeypatch):
    make_kvasir(tmp_path, n=5)
    pairs = get_adapter("kvasir").discover(tmp_path).pairs
    first = build_arrays(pairs, 32, workers=1)
    assert first.images.shape == (5, 32, 32, 3) and first.masks.shape == (5, 32, 32)
    assert first.images.dtype == np.uint8 and set(np.unique(first.masks)) <= {0, 1}
    assert first.facts["case00"].width == 80 and first.facts["case00"].height == 60

    decoded = []
    original = cache_module.read_image
    monkeypatch.setattr(cache_module, "read_image", lambda p: decoded.append(p) or original(p))
    again = build_arrays(pairs, 32, workers=1)
    assert np.array_equal(again.images, first.images) and again.path == first.path
    assert decoded == []
    build_arrays(pairs, 64, workers=1)  # another size is another entry
    assert len(decoded) == 5


def test_changed_source_file_rebuilds(tmp_path):
    make_kvasir(tmp_path, n=3)
    pairs = get_adapter("kvasir").discover(tmp_path).pairs
    a = build_arrays(pairs, 32, workers=1)
    make_kvasir(tmp_path, n=3, size=(64, 96))  # rewrites the files
    b = build_arrays(pairs, 32, workers=1)
    assert a.path != b.path and b.facts["case00"].width == 96


def test_augmentation_is_seeded_and_keeps_masks_binary_and_aligned():
    torch.manual_seed(0)
    masks = (torch.rand(6, 1, 32, 32) > 0.5).float()
    images = masks.repeat(1, 3, 1, 1) * 0.8 + 0.1  # the image shows the mask
    geometric = Augment(brightness=0, contrast=0, saturation=0)
    run = lambda aug, seed: aug(images.clone(), masks.clone(), torch.Generator().manual_seed(seed))  # noqa: E731
    (i1, m1), (i2, m2), (i3, _) = run(geometric, 1), run(geometric, 1), run(geometric, 2)
    assert torch.equal(i1, i2) and torch.equal(m1, m2) and not torch.equal(i1, i3)
    assert set(m1.unique().tolist()) <= {0.0, 1.0}
    # Geometry moved image and mask together: the image thresholded is the mask, up to resampled edges.
    agreement = ((i1[:, :1] > 0.5).float() == m1).float().mean()
    assert agreement > 0.97


def test_colour_jitter_touches_the_image_only():
    images, masks = torch.rand(4, 3, 16, 16), (torch.rand(4, 1, 16, 16) > 0.5).float()
    colour_only = Augment(hflip=0, vflip=0, rotate_degrees=0)
    out_i, out_m = colour_only(images.clone(), masks.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(out_m, masks) and not torch.allclose(out_i, images)
    assert out_i.min() >= 0 and out_i.max() <= 1


def test_flips_are_exact():
    images, masks = torch.rand(8, 3, 8, 8), (torch.rand(8, 1, 8, 8) > 0.5).float()
    flip_only = Augment(hflip=1.0, vflip=0, rotate_degrees=0, brightness=0, contrast=0, saturation=0)
    out_i, out_m = flip_only(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(out_i, images.flip(3)) and torch.equal(out_m, masks.flip(3))


def test_loader_is_deterministic_and_shards_disjointly():
    images = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    masks = (images[..., 0] > 127).astype(np.uint8)
    make = lambda **k: BatchLoader(images, masks, np.arange(10), 3, shuffle=True, augment=Augment(), seed=5, **k)  # noqa: E731
    a, b = list(make()), list(make())
    assert all(torch.equal(x.images, y.images) for x, y in zip(a, b))
    ranks = [make(rank=r, world=2) for r in range(2)]
    seen = [np.concatenate([bt.index for bt in loader]) for loader in ranks]
    assert len(ranks[0]) == len(ranks[1]) == 2 and not set(seen[0]) & set(seen[1])
    plain = BatchLoader(images, masks, np.arange(10), 4)
    first = next(iter(plain))
    assert torch.equal(first.images, torch.from_numpy(images[:4]).permute(0, 3, 1, 2).float() / 255)
    assert [len(bt.index) for bt in plain] == [4, 4, 2]


def test_shared_samples_read_natively():
    for name, rel, n in [("cvc_clinicdb", "samples/cvc_clinicdb", 5), ("ph2", "samples/ph2", 4),
                         ("isic2017", "samples/isic2017_fullres", 4)]:  # fmt: skip
        found = get_adapter(name).discover(shared_dataset(rel))
        arrays = build_arrays(found.pairs, 64, workers=1)
        assert len(arrays.ids) == n and arrays.masks.reshape(n, -1).max(1).min() == 1
