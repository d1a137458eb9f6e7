import json

import pytest
from conftest import shared_dataset
from layouts import make_folder

from nexnet.data import Split, build_split, get_adapter
from nexnet.data.discovery import Discovery, Pair
from nexnet.data.splits import check_overlap, cross_part_duplicates, sklearn_style_split
from nexnet.errors import DataError


def fake(n: int) -> Discovery:
    return Discovery(pairs=[Pair(f"c{i:03d}", None, None) for i in range(n)])  # type: ignore[arg-type]


def assert_partition(split: Split, n: int) -> None:
    parts = split.parts()
    assert not check_overlap(split)
    assert sum(len(v) for v in parts.values()) == n


def test_seeded_split_is_reproducible_and_carves_ten_percent_val():
    a = build_split("ph2", fake(200), "seeded", seed=3)
    b = build_split("ph2", fake(200), "seeded", seed=3)
    c = build_split("ph2", fake(200), "seeded", seed=4)
    assert a.parts() == b.parts() and a.parts() != c.parts()
    assert (len(a.train), len(a.val), len(a.test)) == (144, 16, 40)
    assert_partition(a, 200)


def test_paper_split_matches_sklearn_train_test_split_arithmetic():
    split = build_split("folder", fake(100), "paper")
    assert (len(split.test), len(split.val), len(split.train)) == (25, 15, 60)
    assert_partition(split, 100)
    assert build_split("folder", fake(100), "paper").parts() == split.parts()
    # Independent re-derivation with numpy's legacy generator, as scikit-learn uses it.
    import numpy as np

    ids = [f"c{i:03d}" for i in range(100)]
    perm = np.random.RandomState(101).permutation(100)
    assert sorted(ids[i] for i in perm[:25]) == split.test
    assert sklearn_style_split(ids, 0.25, 101)[1] == [ids[i] for i in perm[:25]]


def test_kfold_folds_cover_everything_once():
    tests = [set(build_split("folder", fake(53), f"kfold:5/{k}").test) for k in range(1, 6)]
    assert set().union(*tests) == {f"c{i:03d}" for i in range(53)}
    assert sum(len(t) for t in tests) == 53
    for bad in ("kfold:5", "kfold:1/1", "kfold:5/6"):
        with pytest.raises(DataError, match="kfold"):
            build_split("folder", fake(10), bad)


def test_split_json_round_trip_and_unknown_ids(tmp_path):
    make_folder(tmp_path / "d", n=10)
    found = get_adapter("folder").discover(tmp_path / "d")
    split = build_split("folder", found, "seeded")
    split.save(tmp_path / "split.json")
    assert json.loads((tmp_path / "split.json").read_text())["test"] == split.test
    assert build_split("folder", found, str(tmp_path / "split.json")).parts() == split.parts()
    found.pairs = found.pairs[:3]
    with pytest.raises(DataError, match="not in the data"):
        build_split("folder", found, str(tmp_path / "split.json"))


def test_duplicates_across_parts_are_named():
    split = Split("x", "seeded", 0, ["a", "b"], ["c"], ["d"])
    warnings = cross_part_duplicates(split, {"a": "h1", "b": "h1", "c": "h2", "d": "h2"})
    assert warnings == ["identical images across parts: c (val), d (test)"]


def test_unknown_split_for_dataset():
    with pytest.raises(DataError, match="does not apply to ph2"):
        build_split("ph2", fake(10), "pranet")


# --- the real datasets, when ../shared is present ------------------------------------------------


@pytest.mark.parametrize("name, train, test", [("pranet", 900, 100), ("medico2020", 880, 120)])
def test_kvasir_split_sizes(name, train, test):
    root = shared_dataset("kvasir_seg")
    found = get_adapter("kvasir").discover(root)
    split = build_split("kvasir", found, name)
    assert (len(split.train) + len(split.val), len(split.test)) == (train, test)
    assert len(split.val) == round(0.1 * train)
    assert_partition(split, 1000)
    listed = (root / "splits" / f"{name}_{'test' if name == 'pranet' else 'val'}.txt").read_text().split()
    assert sorted(listed) == split.test


def test_isic2017_official_sizes():
    found = get_adapter("isic2017").discover(shared_dataset("isic2017_256"))
    split = build_split("isic2017", found, "official")
    assert (len(split.train), len(split.val), len(split.test)) == (2000, 150, 0)


def cvc_frames(n: int = 612) -> Discovery:
    return Discovery(pairs=[Pair(str(i), None, None) for i in range(1, n + 1)])  # type: ignore[arg-type]


def video_of(frame: str) -> int:
    """The shipped table, read independently: the sequence whose range holds ``frame``."""
    from importlib import resources

    text = resources.files("nexnet.data").joinpath("split_lists", "cvc_clinicdb_sequences.txt").read_text()
    ranges = [tuple(map(int, line.split())) for line in text.splitlines() if line and not line.startswith("#")]
    return next(k for k, (a, b) in enumerate(ranges) if a <= int(frame) <= b)


def test_cvc_sequence_table_covers_612_frames_in_29_contiguous_videos():
    from nexnet.data.sequences import sequence_ranges

    ranges = sequence_ranges()
    assert len(ranges) == 29 and ranges[0][0] == 1 and ranges[-1][1] == 612
    assert all(b >= a and nxt[0] == b + 1 for (a, b), nxt in zip(ranges, ranges[1:] + [(613, 0)]))


@pytest.mark.parametrize("name", ["sequence", "seqfold:5/2"])
def test_cvc_sequence_splits_keep_every_video_in_one_part(name):
    split = build_split("cvc_clinicdb", cvc_frames(), name, seed=7)
    assert_partition(split, 612)
    parts_of_video: dict[int, set[str]] = {}
    for part, ids in split.parts().items():
        for i in ids:
            parts_of_video.setdefault(video_of(i), set()).add(part)
    assert len(parts_of_video) == 29 and all(len(p) == 1 for p in parts_of_video.values())  # val included
    assert build_split("cvc_clinicdb", cvc_frames(), name, seed=7).parts() == split.parts()
    assert build_split("cvc_clinicdb", cvc_frames(), name, seed=8).parts() != split.parts()
    if name == "sequence":  # about PraNet's 62/612 share: at least 62 frames, at most one video more
        assert 62 <= len(split.test) < 62 + 26


def test_cvc_sequence_folds_test_every_frame_once():
    tests = [set(build_split("cvc_clinicdb", cvc_frames(), f"seqfold:5/{n}", seed=0).test) for n in range(1, 6)]
    assert sum(len(t) for t in tests) == 612 and set().union(*tests) == {str(i) for i in range(1, 613)}


def test_cvc_sequence_split_refuses_files_that_are_not_frame_numbers():
    renamed = Discovery(pairs=[Pair(f"frame_{i}", None, None) for i in range(1, 30)])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="'frame_1' is not a frame number 1..612, so its video is unknown"):
        build_split("cvc_clinicdb", renamed, "sequence")
