"""Second pass on honest numbers (issue 27): every leak path closed has a test that fails on the old
code, and each mutation that would move a choice onto held-out images fails at least one test here."""

import json

import numpy as np
import pytest
from PIL import Image

from nexnet.evaluation import score


def _square(size: int = 8) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[2:6, 2:6] = 255
    return mask


# --- score: a broken prediction scores as no prediction, never better ---------------------------


def test_a_corrupt_or_wrong_sized_prediction_scores_as_an_empty_mask(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for i in range(5):
        Image.fromarray(_square()).save(gt / f"case{i}.png")
    Image.fromarray(_square()).save(pred / "case0.png")  # perfect
    (pred / "case1.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")  # corrupt
    Image.fromarray(_square(16)).save(pred / "case2.png")  # another size
    s = score(pred, gt, tmp_path / "s", say=lambda m: None)  # case3, case4: missing
    assert s["cases"] == 5 and s["mean"]["dice"] == pytest.approx(0.2)
    assert [c["id"] for c in s["unusable_predictions"]["cases"]] == ["case1", "case2"]
    assert "original size" in s["unusable_predictions"]["cases"][1]["problem"]
    on_disk = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert on_disk["unusable_predictions"]["count"] == 2 and on_disk["missing_predictions"]["count"] == 2
    kept = score(pred, gt, say=lambda m: None, ignore_missing=True)  # broken files are not "missing"
    assert kept["cases"] == 3 and kept["mean"]["dice"] == pytest.approx(1 / 3)


def test_an_unreadable_ground_truth_drops_only_its_case(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for i in range(2):
        Image.fromarray(_square()).save(pred / f"case{i}.png")
    Image.fromarray(_square()).save(gt / "case0.png")
    (gt / "case1.png").write_bytes(b"broken")
    s = score(pred, gt, say=lambda m: None)
    assert s["cases"] == 1 and s["mean"]["dice"] == 1.0 and len(s["problems"]) == 1


# --- pretraining: a resumed run keeps its split, and its checkpoint names every image it read -----


def _pretrain_cfg(root, epochs=1, dataset="folder"):
    from nexnet.training.pretrainer import PRETRAIN_DEFAULTS

    return {**PRETRAIN_DEFAULTS, "datasets": [dataset], "data_roots": [str(root)], "split": "seeded",
            "split_seed": 3, "seed": 5, "image_size": 32, "epochs": epochs, "batch_size": 4, "workers": 1}  # fmt: skip


def _copy_data(data, to, drop=()):
    import shutil

    shutil.copytree(data, to)
    for stem in drop:
        for part in ("images", "masks"):
            (to / part / f"{stem}.png").unlink()
    return to


def test_a_resumed_pretraining_refuses_a_data_root_without_its_saved_cases(data, tmp_path):
    from nexnet.errors import NexnetError
    from nexnet.training.pretrainer import pretrain

    out = tmp_path / "pt"
    pretrain(_pretrain_cfg(data), out, quiet=True)
    first = json.loads((out / "best" / "config.json").read_text())["images_read"]["folder"]
    held_out = json.loads((out / "split_folder.json").read_text())["test"][0]
    fewer = _copy_data(data, tmp_path / "fewer", drop=[held_out])  # re-splitting would move cases
    with pytest.raises(NexnetError, match=r"^--resume: .*split_folder.json: 1 cases are not in the data.*--data-root"):
        pretrain(_pretrain_cfg(fewer, epochs=2), out, resume=True, quiet=True)
    same = _copy_data(data, tmp_path / "same")
    pretrain(_pretrain_cfg(same, epochs=2), out, resume=True, quiet=True)
    assert json.loads((out / "best" / "config.json").read_text())["images_read"]["folder"] == first


def test_a_resumed_pretraining_records_the_images_of_every_stretch(data, tmp_path, monkeypatch):
    import nexnet.training.pretrainer as P

    out = tmp_path / "pt"
    P.pretrain(_pretrain_cfg(data), out, quiet=True)
    first = json.loads((out / "best" / "seen_images.json").read_text())["train"]
    real = P.training_images

    def one_image_less(cfg, folder=None, resume=False):  # the second stretch reads a subset
        images, ids, hashes = real(cfg, folder, resume)
        return images[1:], ids[1:], hashes[1:]

    monkeypatch.setattr(P, "training_images", one_image_less)
    monkeypatch.setattr(P, "_validate", lambda *a, **k: {"val_loss": -1.0, "val_psnr": 0.0, "val_ssim": 0.0})
    P.pretrain(_pretrain_cfg(data, epochs=2), out, resume=True, quiet=True)  # best/ is rewritten
    assert json.loads((out / "best" / "seen_images.json").read_text())["train"] == first
    read = json.loads((out / "best" / "config.json").read_text())["images_read"]["folder"]
    assert len(read) == len(first)


def test_a_finetuned_model_records_the_images_its_ssl_encoder_was_pretrained_on(data, tmp_path):
    from tiny import tiny_cfg

    from nexnet.cli import main
    from nexnet.synthetic import make_synthetic_dataset
    from nexnet.training.pretrainer import pretrain
    from nexnet.training.trainer import train

    pretrain(_pretrain_cfg(data), tmp_path / "pt", quiet=True)  # reads data's training part, as "folder"
    other = make_synthetic_dataset(tmp_path / "other", n=24, seed=7, size_range=(40, 56))
    cfg = tiny_cfg(other, epochs=1, extra=[f"train.ssl_checkpoint={tmp_path / 'pt'}", "model.ssl=true"])
    cfg.data.dataset = "kvasir"
    train(cfg, tmp_path / "run", quiet=True)
    pretrained = set(json.loads((tmp_path / "pt" / "best" / "seen_images.json").read_text())["train"])
    recorded = set(json.loads((tmp_path / "run" / "best" / "seen_images.json").read_text())["train"])
    assert pretrained <= recorded
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best"), "--dataset", "folder",
                 "--data-root", str(data), "--subset", "all", "--out", str(tmp_path / "e")])  # fmt: skip
    assert code == 2 and not (tmp_path / "e" / "summary.json").exists()


# --- last/ is a checkpoint too: it carries the record that evaluation checks -----------------------


def test_evaluating_last_under_another_dataset_name_is_refused_by_its_pixels(data, tmp_path, capsys):
    from tiny import tiny_cfg

    from nexnet.cli import main
    from nexnet.training.trainer import train

    train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    for name in ("split.json", "seen_images.json"):
        assert (tmp_path / "run" / "last" / name).is_file()
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last"), "--dataset", "kvasir",
                 "--data-root", str(data), "--split", "seeded", "--subset", "all", "--out", str(tmp_path / "e")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pixel-identical" in err and "\n" not in err


# --- evaluate: one folder per evaluation; validation scores labelled as selection data ------------


def test_each_evaluation_keeps_its_own_summary_and_validation_is_labelled(data, tmp_path, capsys):
    from tiny import tiny_cfg

    from nexnet.cli import main
    from nexnet.synthetic import make_synthetic_dataset
    from nexnet.training.trainer import train

    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    own = ["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root", str(data)]
    assert main(own) == 0
    test_summary = run / "eval" / "best_folder_seeded_test" / "summary.json"
    first = json.loads(test_summary.read_text())
    other = make_synthetic_dataset(tmp_path / "other", n=6, seed=9, size_range=(40, 56))
    assert main(["evaluate", "--checkpoint", str(run / "best"), "--dataset", "kvasir", "--data-root", str(other),
                 "--split", "seeded", "--subset", "all"]) == 0  # fmt: skip
    assert json.loads(test_summary.read_text()) == first  # another dataset's score replaced nothing
    assert main([*own, "--threshold", "val", "--tta", "--protocol", "paper"]) == 0
    tuned = json.loads((run / "eval" / "best_folder_seeded_test_thr-val_tta_paper" / "summary.json").read_text())
    assert tuned["tta"] and json.loads(test_summary.read_text()) == first  # other settings, another folder
    assert json.loads((run / "eval" / "best_kvasir_seeded_all" / "summary.json").read_text())["cases"] == 6
    assert not (run / "best" / "summary.json").exists()
    capsys.readouterr()
    assert main([*own, "--subset", "val"]) == 0
    assert "selection data, not an estimate" in capsys.readouterr().out
    val = json.loads((run / "eval" / "best_folder_seeded_val" / "summary.json").read_text())
    assert "selection data" in val["subset_note"] and "subset_note" not in first


# --- CVC-ClinicDB: PraNet's own test frames, and the near-twin note on every frame-level split ----


def _cvc_frames(n=612):
    from nexnet.data.discovery import Discovery, Pair

    return Discovery(pairs=[Pair(str(i), None, None) for i in range(1, n + 1)])  # type: ignore[arg-type]


def test_cvc_pranet_is_praNets_own_list_of_62_test_frames():
    from conftest import shared_dataset

    from nexnet.data import build_split

    listed = (shared_dataset("cvc_clinicdb_splits") / "pranet_test.txt").read_text().split()  # read apart
    split = build_split("cvc_clinicdb", _cvc_frames(), "pranet", seed=4)
    assert split.test == sorted(listed) and len(split.test) == 62
    assert build_split("cvc_clinicdb", _cvc_frames(), "pranet", seed=5).test == split.test  # no seed in it
    assert len(split.train) + len(split.val) == 550


def test_cvc_pranet_refuses_a_copy_without_its_frames_and_names_a_way_out():
    from nexnet.data import build_split
    from nexnet.errors import DataError

    with pytest.raises(DataError, match=r"needs all 612 frames: use sequence, seqfold:5/1 or seeded$"):
        build_split("cvc_clinicdb", _cvc_frames(200), "pranet")


@pytest.mark.parametrize("name", ["pranet", "seeded", "paper", "kfold:5/1"])
def test_every_frame_level_cvc_split_carries_the_near_twin_note(name):
    from nexnet.data import build_split

    notes = " ".join(build_split("cvc_clinicdb", _cvc_frames(), name).notes)
    assert "near-twins" in notes and "sequence and seqfold:K/N" in notes
    assert "near-twins" not in " ".join(build_split("cvc_clinicdb", _cvc_frames(), "sequence").notes)


# --- the dead end of a split without test masks, and --skip-bad -----------------------------------


def _split_file(path, data, train, val, test):
    path.write_text(json.dumps({"dataset": "folder", "name": "mine", "seed": 0, "train": train, "val": val,
                                "test": test}))  # fmt: skip
    return str(path)


def _loud(args):
    return [a for a in args[3:] if a != "--quiet"]  # `nexnet train ...` in this process, printing its notes


def _ids(data):
    return sorted(p.stem for p in (data / "images").iterdir())


def test_a_split_without_a_test_part_is_said_at_the_start_and_evaluate_names_a_way_out(data, tmp_path, capsys):
    from tiny import cli_train

    from nexnet.cli import main

    ids = _ids(data)
    split = _split_file(tmp_path / "no_test.json", data, ids[:18], ids[18:], [])
    assert main([*_loud(cli_train(data, tmp_path / "run", "--epochs", "1")), "--split", split]) == 0
    assert "has no test part" in capsys.readouterr().out
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best"), "--dataset", "folder",
                 "--data-root", str(data)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "the model's own split (mine) has no test cases" in err and "retrain on a split" in err
    assert "leave out --split" not in err  # no --split was given


def test_check_data_refuses_a_split_that_train_would_refuse(data, tmp_path, capsys):
    from nexnet.cli import main

    ids = _ids(data)
    split = _split_file(tmp_path / "all_test.json", data, [], [], ids)
    assert main(["check-data", "--dataset", "folder", "--data-root", str(data), "--split", split]) == 1
    out = capsys.readouterr().out
    assert "no readable train cases, so train would refuse it" in out and "NOT USABLE" in out


def test_skip_bad_leaves_unreadable_pairs_out_of_the_duplicate_check_and_evaluate_takes_it(data, tmp_path, capsys):
    from tiny import cli_train

    from nexnet.cli import main
    from nexnet.data import build_split, get_adapter

    broken = _copy_data(data, tmp_path / "broken")
    split = build_split("folder", get_adapter("folder").discover(data), "seeded", 0)
    for stem in (split.train[0], split.test[0]):  # unreadable in two parts: no images alike
        (broken / "images" / f"{stem}.png").write_bytes(b"not an image")
    assert main([*_loud(cli_train(broken, tmp_path / "run", "--epochs", "1")), "--skip-bad"]) == 0
    assert "identical images across parts" not in capsys.readouterr().out
    checkpoint = ["evaluate", "--checkpoint", str(tmp_path / "run" / "best"), "--dataset", "folder",
                  "--data-root", str(broken)]  # fmt: skip
    assert main([*checkpoint, "--skip-bad"]) == 0


def test_drop_seen_scores_only_the_cases_the_model_never_saw_and_names_the_rest(data, tmp_path, capsys):
    from tiny import tiny_cfg

    from nexnet.cli import main
    from nexnet.data import build_split, get_adapter
    from nexnet.training.trainer import train

    cfg = tiny_cfg(data, epochs=1)
    cfg.data.seed = 1
    train(cfg, tmp_path / "run", quiet=True)
    other_seed = ["evaluate", "--checkpoint", str(tmp_path / "run" / "best"), "--dataset", "folder",
                  "--data-root", str(data), "--split", "seeded", "--split-seed", "0", "--out", str(tmp_path / "e")]  # fmt: skip
    assert main(other_seed) == 2
    assert "or pass --drop-seen" in capsys.readouterr().err
    assert main([*other_seed, "--drop-seen"]) == 0
    s = json.loads((tmp_path / "e" / "summary.json").read_text())
    own = json.loads((tmp_path / "run" / "split.json").read_text())
    seen = set(own["train"]) | set(own["val"])
    scored = {c["id"] for c in s["per_case"]}
    test0 = set(build_split("folder", get_adapter("folder").discover(data), "seeded", 0).test)
    assert scored == test0 - seen and set(s["left_out_seen"]["ids"]) == test0 & seen and scored


# --- tests that fail when a choice moves onto held-out images (each guards one mutation) ----------


def _trained_with_spies(data, tmp_path, monkeypatch):
    """A one-epoch run, recording which parts the trainer read rows of and the masks pos_weight saw."""
    from tiny import tiny_cfg

    import nexnet.training.trainer as T
    from nexnet.data import RunData

    parts, weighed = [], []
    real_rows, real_weight = RunData.rows, T.positive_weight
    monkeypatch.setattr(RunData, "rows", lambda self, part: parts.append(part) or real_rows(self, part))
    monkeypatch.setattr(T, "positive_weight", lambda masks: weighed.append(np.asarray(masks)) or real_weight(masks))
    T.train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    return parts, weighed


def test_training_selects_on_validation_and_weighs_on_training_masks_only(data, tmp_path, monkeypatch):
    parts, weighed = _trained_with_spies(data, tmp_path, monkeypatch)
    assert "test" not in parts and set(parts) == {"train", "val"}  # best/ is chosen on validation
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    small = lambda i: np.asarray(Image.open(data / "masks" / f"{i}.png").resize((32, 32), Image.BILINEAR)) > 127  # noqa: E731
    expected = np.stack([small(i) for i in split["train"]]).astype(np.uint8)
    assert len(weighed) == 1 and np.array_equal(weighed[0], expected)  # training masks, in id order


def test_threshold_val_chooses_on_the_validation_masks(data, tmp_path, monkeypatch):
    from tiny import tiny_cfg

    import nexnet.evaluation.evaluator as E
    from nexnet.training.trainer import train

    train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    chosen_on = []
    real = E._pick_threshold

    def spy(chunks, mask_of):
        seen = list(chunks)
        chosen_on.extend(i for ids, _ in seen for i in ids)
        return real(iter(seen), mask_of)

    monkeypatch.setattr(E, "_pick_threshold", spy)
    E.evaluate(tmp_path / "run" / "best", "folder", data, threshold="val", device="cpu", say=lambda m: None)
    assert chosen_on == json.loads((tmp_path / "run" / "split.json").read_text())["val"]


def test_a_validation_image_scored_under_another_dataset_name_is_refused(data, tmp_path):
    from tiny import tiny_cfg

    from nexnet.errors import NexnetError
    from nexnet.evaluation import evaluate
    from nexnet.training.trainer import train

    train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    own = json.loads((tmp_path / "run" / "split.json").read_text())
    rest = [i for i in _ids(data) if i not in own["val"]]
    as_test = tmp_path / "val_as_test.json"  # the model's validation images as another dataset's test part
    as_test.write_text(json.dumps({"dataset": "kvasir", "name": "mine", "seed": 0, "train": rest[:-2],
                                   "val": rest[-2:], "test": own["val"]}))  # fmt: skip
    with pytest.raises(NexnetError, match="pixel-identical to images this model was trained or selected on"):
        evaluate(tmp_path / "run" / "best", "kvasir", data, split=str(as_test), device="cpu", say=lambda m: None)


def test_the_bootstrap_interval_is_95_percent_wide():
    from nexnet.evaluation.metrics import bootstrap_ci

    values = np.random.default_rng(1).normal(0.7, 0.2, 400)
    lo, hi = bootstrap_ci(values)
    normal_width = 2 * 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert hi - lo == pytest.approx(normal_width, rel=0.1)


def test_the_authors_protocol_pools_the_pixels_of_a_batch():
    from nexnet.evaluation.metrics import authors_protocol_dice

    gts = np.zeros((2, 10, 10), bool)
    gts[0, 0, 0] = True  # one pixel, found
    gts[1] = True  # 100 pixels, missed
    probs = np.where(gts, 0.9, 0.0)
    probs[1] = 0.0
    pooled = authors_protocol_dice(probs, gts, batch_size=2)["dice"]
    assert pooled == pytest.approx(2 * 1 / (1 + 101))  # one batch: tp 1, |pred| 1, |gt| 101
    assert authors_protocol_dice(probs, gts, batch_size=1)["dice"] == pytest.approx(0.5)  # per image: 1 and 0


def test_a_crash_between_two_writes_leaves_the_old_folder_intact(tmp_path):
    from nexnet.io import atomic_directory, atomic_write_json

    folder = tmp_path / "best"
    with atomic_directory(folder) as tmp:
        atomic_write_json(tmp / "a.json", {"v": 1})
        atomic_write_json(tmp / "b.json", {"v": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(folder) as tmp:
            atomic_write_json(tmp / "a.json", {"v": 2})
            raise KeyboardInterrupt  # killed before the second file
    assert {p.name: json.loads(p.read_text()) for p in folder.iterdir()} == {"a.json": {"v": 1}, "b.json": {"v": 1}}


def test_a_pickle_without_a_telling_suffix_is_refused_as_a_pickle(tmp_path):
    import torch

    import nexnet

    weights = tmp_path / "plain" / "weights"  # no .pth, .pt or .bin
    weights.parent.mkdir()
    torch.save({"w": torch.zeros(1)}, weights)
    with pytest.raises(nexnet.NexnetError, match=r"weights: is a pickle file; nexnet never unpickles"):
        nexnet.from_pretrained(weights)
