"""No held-out image reaches pretraining, training or model selection: split seeds, SSL checkpoints,
evaluation on another split, scoring with missing predictions, DDP decisions and resumed state."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny import free_port

import nexnet.training.trainer as trainer_module
from nexnet.cli import main
from nexnet.data import build_split, get_adapter
from nexnet.errors import DataError, NexnetError
from nexnet.evaluation import evaluate, score
from nexnet.training.config import resolve
from nexnet.training.pretrainer import PRETRAIN_DEFAULTS, pretrain
from nexnet.training.trainer import train

TINY = ["model.widths=[4,4,8,8,8,8]", "train.warmup_epochs=1", "train.lr=0.003", "train.eval_batch_size=8"]


def tiny_cfg(data, epochs=1, split_seed=0, extra=()):
    return resolve(None, [*TINY, *extra], model__name="nexnet_seg_s", data__dataset="folder",
                   data__data_root=str(data), data__split="seeded", data__seed=split_seed, data__image_size=32,
                   train__epochs=epochs, train__batch_size=4, train__device="cpu")  # fmt: skip


def seeded_split(data, seed):
    return build_split("folder", get_adapter("folder").discover(data), "seeded", seed)


# --- SSL pretraining is bound to the fine-tuning split -------------------------------------------


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pt") / "pt"
    cfg = {**PRETRAIN_DEFAULTS, "datasets": ["folder"], "data_roots": [str(data)], "split": "seeded",
           "split_seed": 3, "seed": 5, "image_size": 32, "epochs": 1, "batch_size": 4, "workers": 1}  # fmt: skip
    pretrain(cfg, out, quiet=True)
    return out


def test_pretraining_records_exactly_the_training_part_of_its_split_seed(data, pretrained):
    read = json.loads((pretrained / "best" / "config.json").read_text())["images_read"]
    assert read == {"folder": sorted(seeded_split(data, 3).train)}  # split seed 3, not the training seed 5
    assert seeded_split(data, 3).train != seeded_split(data, 0).train  # so a seed mix-up would show


def test_finetuning_on_another_split_seed_is_refused_and_the_same_one_accepted(data, pretrained, tmp_path):
    ssl = [f"train.ssl_checkpoint={pretrained}", "model.ssl=true"]
    with pytest.raises(NexnetError, match=r"pretrained on \d+ folder images outside this run's training part.*"
                                          r"--split-seed 0"):  # fmt: skip
        train(tiny_cfg(data, split_seed=0, extra=ssl), tmp_path / "seed0", quiet=True)
    result = train(tiny_cfg(data, split_seed=3, extra=[*ssl, "train.seed=1"]), tmp_path / "seed3", quiet=True)
    assert result["epoch"] == 1


def test_a_checkpoint_without_its_image_list_is_refused(data, pretrained, tmp_path):
    cfg_file = pretrained / "best" / "config.json"
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes((pretrained / "best" / "model.safetensors").read_bytes())
    cfg = json.loads(cfg_file.read_text())
    del cfg["images_read"]
    (old / "config.json").write_text(json.dumps(cfg))
    ssl = [f"train.ssl_checkpoint={old}", "model.ssl=true"]
    with pytest.raises(NexnetError, match="records no list of the images it was pretrained on"):
        train(tiny_cfg(data, split_seed=3, extra=ssl), tmp_path / "run", quiet=True)


def test_reproduce_table2_pretrains_on_the_finetuning_split(tmp_path, monkeypatch):
    from nexnet.recipes import reproduce as R

    seen = {}
    monkeypatch.setattr(R, "available", lambda *a: [("kvasir", tmp_path)])
    monkeypatch.setattr(R, "pretrain", lambda cfg, pre, **k: seen.update(cfg) or (pre / "best").mkdir(parents=True))
    monkeypatch.setattr(R, "run_cell", lambda *a: None)
    monkeypatch.setattr(R, "bar_chart", lambda *a, **k: None)
    R.table2(
        tmp_path, tmp_path / "out", ["kvasir"], True, "cpu", lambda m: None, ["data.split=kfold:5/2", "data.seed=4"]
    )
    assert (seen["split"], seen["split_seed"]) == ("kfold:5/2", 4)


# --- Split seed apart from the training seed -----------------------------------------------------


def test_seed_and_split_seed_are_apart_and_both_recorded(data, tmp_path):
    base = ["train", "--model", "nexnet_seg_s", "--dataset", "folder", "--data-root", str(data), "--split",
            "seeded", "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--quiet",
            *sum((["--set", s] for s in TINY), [])]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a"), "--seed", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--seed", "1", "--split-seed", "2"]) == 0
    a, b = (json.loads((tmp_path / r / "split.json").read_text()) for r in "ab")
    assert a["seed"] == 0 and a["test"] == seeded_split(data, 0).test  # --seed leaves the split alone
    assert b["seed"] == 2 and b["test"] == seeded_split(data, 2).test
    best = json.loads((tmp_path / "b" / "best" / "config.json").read_text())
    assert (best["seed"], best["split_seed"], best["split"]) == (1, 2, "seeded")
    assert json.loads((tmp_path / "b" / "best" / "split.json").read_text()) == b


# --- evaluate refuses a split whose scored cases the model has seen ------------------------------


@pytest.fixture(scope="module")
def trained_seed1(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("t") / "run"
    train(tiny_cfg(data, split_seed=1), run, quiet=True)
    return run


def test_evaluate_defaults_to_the_models_own_split_even_away_from_its_run(data, trained_seed1, tmp_path):
    moved = tmp_path / "moved_best"  # best/ copied away from its run folder still knows its split
    moved.mkdir()
    for f in (trained_seed1 / "best").iterdir():
        (moved / f.name).write_bytes(f.read_bytes())
    s = evaluate(moved, "folder", data, out=tmp_path / "e", device="cpu", say=lambda m: None)
    assert (s["split_seed"], sorted(c["id"] for c in s["per_case"])) == (1, sorted(seeded_split(data, 1).test))
    s = evaluate(moved, "folder", data, split="seeded", device="cpu", say=lambda m: None)  # the model's seed
    assert s["split_seed"] == 1


def test_evaluate_on_a_split_that_overlaps_training_is_refused(data, trained_seed1, tmp_path, capsys):
    with pytest.raises(NexnetError, match=r"of the 5 test cases of split seeded \(seed 0\) were used to train"):
        evaluate(trained_seed1 / "best", "folder", data, split="seeded", split_seed=0, device="cpu")
    code = main(["evaluate", "--checkpoint", str(trained_seed1 / "best"), "--dataset", "folder", "--data-root",
                 str(data), "--split", "seeded", "--split-seed", "0", "--out", str(tmp_path / "e")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "or pass --split-seed 1" in err.strip().splitlines()[-1]


def test_a_split_without_the_scored_part_is_refused_before_any_image_is_decoded(data, trained_seed1, tmp_path,
                                                                               monkeypatch):  # fmt: skip
    import nexnet.evaluation.scored_cases as evaluator_module

    ids = sorted(seeded_split(data, 1).test)  # cases the model never saw, none of them in a test part
    split = {"dataset": "folder", "name": "no_test", "seed": 0, "train": ids[:3], "val": ids[3:], "test": []}
    (tmp_path / "no_test.json").write_text(json.dumps(split))
    monkeypatch.setattr(evaluator_module, "prepare_data", lambda *a, **k: pytest.fail("decoded the images"))
    no_test = str(tmp_path / "no_test.json")
    with pytest.raises(NexnetError, match=r"split no_test has no test cases in .*; leave out --split to score the"):
        evaluate(trained_seed1 / "best", "folder", data, split=no_test, device="cpu")  # trained on this dataset
    with pytest.raises(NexnetError, match=r"split no_test has no test cases in .*; try --subset all for a dataset"):
        evaluate(trained_seed1 / "best", "kvasir", data, split=no_test, device="cpu")  # another dataset's name


def test_the_refusal_offers_the_models_split_seed_only_where_a_seed_would_help():
    from nexnet.data.splits import Split
    from nexnet.evaluation.scored_cases import refuse_seen_cases

    trained = Split("kvasir", "pranet", 0, ["a", "b"], ["c"], ["d"])
    for scored, offered in [(Split("kvasir", "pranet", 2, ["b"], ["d"], ["a", "c"]), True),
                            (Split("kvasir", "medico2020", 0, ["d"], [], ["a", "b"]), False)]:  # fmt: skip
        with pytest.raises(NexnetError, match="leave out --split") as e:
            refuse_seen_cases(trained, scored, "test")
        assert ("--split-seed 0" in str(e.value)) is offered, str(e.value)


def test_the_same_images_under_another_dataset_name_are_refused_by_their_pixels(data, trained_seed1, tmp_path):
    # The kvasir adapter reads the same folder: other names for the split, the same pixels.
    with pytest.raises(NexnetError, match=r"test cases are pixel-identical to images this model was trained"):
        evaluate(trained_seed1 / "best", "kvasir", data, split="seeded", split_seed=3, device="cpu")
    with pytest.raises(NexnetError, match=r"all cases are pixel-identical to images this model was trained"):
        evaluate(trained_seed1 / "best", "kvasir", data, split="seeded", subset="all", device="cpu")


def test_threshold_chosen_on_training_images_is_refused(data, trained_seed1, tmp_path):
    split = seeded_split(data, 1)
    split.val, split.train = split.train[:4], split.train[4:] + split.val  # a val part of training images
    split.save(tmp_path / "mixed.json")
    with pytest.raises(NexnetError, match="validation cases that would choose the threshold are pixel-identical"):
        evaluate(trained_seed1 / "best", "kvasir", data, split=str(tmp_path / "mixed.json"), threshold="val",
                 device="cpu")  # fmt: skip


def test_an_ssl_checkpoint_pretrained_on_held_out_pixels_is_refused_under_any_name(data, pretrained, tmp_path):
    ssl = [f"train.ssl_checkpoint={pretrained}", "model.ssl=true"]
    cfg = tiny_cfg(data, split_seed=0, extra=ssl)
    cfg.data.dataset = "kvasir"  # the pretraining read these images as "folder"
    with pytest.raises(NexnetError, match="validation and test cases are pixel-identical to images the SSL"):
        train(cfg, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # refused before anything was written


# --- score counts a missing prediction as an empty mask ------------------------------------------


def test_score_counts_missing_predictions_as_empty_masks(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    for i in range(4):
        Image.fromarray(mask).save(gt / f"case{i}.png")
    Image.fromarray(mask).save(pred / "case0.png")  # one perfect prediction, three missing
    s = score(pred, gt, tmp_path / "s", say=lambda m: None)
    assert s["cases"] == 4 and s["mean"]["dice"] == pytest.approx(0.25)
    assert s["missing_predictions"] == {"count": 3, "ids": ["case1", "case2", "case3"], "scored_as": "empty masks"}
    old = score(pred, gt, say=lambda m: None, ignore_missing=True)
    assert old["cases"] == 1 and old["mean"]["dice"] == 1.0
    assert old["missing_predictions"]["scored_as"] == "left out (--ignore-missing)"
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "--ignore-missing", "--out", str(tmp_path / "o")]) == 0


# --- a hand-edited split.json with overlapping parts ---------------------------------------------


def test_an_overlapping_split_file_is_refused(data, tmp_path):
    split = seeded_split(data, 0)
    split.test.append(split.train[0])
    split.save(tmp_path / "split.json")
    with pytest.raises(DataError, match=r"split.json: 1 cases sit in two parts \(case .* is in both train and test\)"):
        build_split("folder", get_adapter("folder").discover(data), str(tmp_path / "split.json"))


# --- resume restores every piece of state --------------------------------------------------------


def test_resume_restores_the_fp16_loss_scale(data, tmp_path, monkeypatch):
    made = []

    def scaler(init_scale):  # an enabled scaler on CPU stands in for fp16 autocast on CUDA
        def make(amp, device):
            made.append(torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=1000))
            return made[-1]

        return make

    monkeypatch.setattr(trainer_module, "make_scaler", scaler(1024.0))
    train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    saved = json.loads((tmp_path / "run" / "last" / "state.json").read_text())["scaler"]
    assert saved["scale"] == 1024.0
    monkeypatch.setattr(trainer_module, "make_scaler", scaler(65536.0))
    train(tiny_cfg(data, epochs=2), tmp_path / "run", resume=True, quiet=True)
    assert made[-1].get_scale() == 1024.0


def test_two_epochs_then_resume_to_four_equals_four_straight(data, tmp_path):
    plateau = ["train.schedule=plateau"]  # its learning rate does not depend on the epoch count
    train(tiny_cfg(data, epochs=4, extra=plateau), tmp_path / "straight", quiet=True)
    train(tiny_cfg(data, epochs=2, extra=plateau), tmp_path / "resumed", quiet=True)
    train(tiny_cfg(data, epochs=4, extra=plateau), tmp_path / "resumed", resume=True, quiet=True)
    a, b = (load_file(tmp_path / r / "last" / "model.safetensors") for r in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_with_nothing_left_trains_no_epoch_and_says_what_would_let_it_train_on(data, tmp_path, monkeypatch):
    import itertools
    import types

    clock = itertools.count(0.0, 35.0)  # every epoch takes 35 s: its start and end are two calls apart
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(time=lambda: next(clock)))
    run, budget = tmp_path / "run", ["train.max_minutes=1"]
    first = train(tiny_cfg(data, epochs=5, extra=budget), run, quiet=True)  # 35 s, and 35 more would pass 60
    assert first["epoch"] == 1 and first["stop_reason"] == "time budget of 1 min reached"
    log = (run / "log.csv").read_text()
    again = train(tiny_cfg(data, epochs=5, extra=budget), run, resume=True, quiet=True)
    assert again["stop_reason"].startswith("the time budget of 1 min is spent (35 s trained, and an epoch would")
    assert (run / "log.csv").read_text() == log  # no epoch at the spent schedule's last learning rate
    longer = train(tiny_cfg(data, epochs=5, extra=["train.max_minutes=2"]), run, resume=True, quiet=True)
    assert longer["epoch"] == 3 and longer["stop_reason"] == "time budget of 2 min reached"
    done = train(tiny_cfg(data, epochs=3, extra=["train.max_minutes=60"]), run, resume=True, quiet=True)
    assert done["stop_reason"] == "already trained for --epochs 3; resume with a larger --epochs to train on"
    short = train(tiny_cfg(data, epochs=5, extra=["train.max_minutes=0.5"]), tmp_path / "short", quiet=True)
    assert short["stop_reason"] == "time budget of 0.5 min reached (an epoch takes 0.6 min, more than the budget)"


def test_a_pretraining_with_its_time_budget_spent_resumes_to_no_epoch(data, tmp_path, monkeypatch, capsys):
    import itertools
    import types

    import nexnet.training.pretrainer as pretrainer_module

    clock = itertools.count(0.0, 35.0)
    monkeypatch.setattr(pretrainer_module, "time", types.SimpleNamespace(time=lambda: next(clock)))
    cfg = {**PRETRAIN_DEFAULTS, "datasets": ["folder"], "data_roots": [str(data)], "split": "seeded",
           "image_size": 32, "epochs": 5, "batch_size": 4, "workers": 1, "max_minutes": 1}  # fmt: skip
    assert pretrain(cfg, tmp_path / "pt", quiet=True)["epoch"] == 1  # 35 s, and 35 more would pass 60
    assert pretrain(cfg, tmp_path / "pt", resume=True)["epoch"] == 1
    assert "the time budget of 1 min is spent (35 s trained, and an epoch would pass it)" in capsys.readouterr().out


def test_an_early_stopped_run_says_it_is_finished_before_anything_about_epochs():
    from nexnet.training.run_config import TrainConfig
    from nexnet.training.trainer import _nothing_left

    tc = TrainConfig(epochs=4, early_stop=2)
    state = {"epoch": 4, "since_best": 2, "elapsed": 10.0}  # stopped early on its last epoch
    assert (
        _nothing_left(tc, state, [])
        == "already stopped early (2 epochs without a better val mDice): best/ holds its model"
    )
    assert _nothing_left(tc, {**state, "since_best": 1}, []).startswith("already trained for --epochs 4")
    assert _nothing_left(tc, {**state, "epoch": 3, "since_best": 1}, []) is None


# --- DDP: every rank validates the same model and takes the same decisions -----------------------

RANK_SCRIPT = """
import json, os, sys
import nexnet.training.trainer as T

validated = []
original = T.validate


def spy(model, *args, **kwargs):
    metrics = original(model, *args, **kwargs)
    state = [t.double().sum().item() for t in model.state_dict().values() if t.is_floating_point()]
    validated.append({"metrics": metrics, "state": state})
    return metrics


T.validate = spy
cfg, out = json.loads(open(sys.argv[1]).read()), sys.argv[2]
result = T.train(cfg, out, quiet=True)
rows = [{k: r[k] for k in ("val_dice", "val_loss", "lr", "best")} for r in result["log"]]
with open(f"{out}.rank{os.environ['RANK']}.json", "w") as f:
    json.dump({"validated": validated, "rows": rows, "best_epoch": result["best_epoch"]}, f)
"""


def test_two_gloo_ranks_validate_one_model_and_agree_on_every_decision(data, tmp_path):
    (tmp_path / "rank.py").write_text(textwrap.dedent(RANK_SCRIPT))
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_cfg(data, epochs=3).to_dict()))
    run = tmp_path / "ddp"
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           str(tmp_path / "rank.py"), str(tmp_path / "cfg.json"), str(run)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rank0, rank1 = (json.loads(Path(f"{run}.rank{i}.json").read_text()) for i in (0, 1))
    assert len(rank0["validated"]) == 3
    for a, b in zip(rank0["validated"], rank1["validated"]):
        assert a["state"] == b["state"]  # weights and BatchNorm statistics, exactly
        assert a["metrics"] == b["metrics"]
    assert rank0["rows"] == rank1["rows"] and rank0["best_epoch"] == rank1["best_epoch"]
