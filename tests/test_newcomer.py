"""A newcomer's mistakes: no command writes into source data or over files it did not write, and
every bad option gets one line before anything is decoded or written."""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nexnet
from nexnet.cli import main
from nexnet.errors import NexnetError
from nexnet.training.config import resolve
from nexnet.training.trainer import train

TINY = ["model.widths=[4,4,8,8,8,8]", "train.warmup_epochs=1", "train.lr=0.003", "train.eval_batch_size=8"]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = resolve(None, TINY, model__name="nexnet_seg_s", data__dataset="folder", data__data_root=str(data),
                  data__split="seeded", data__image_size=32, train__epochs=1, train__batch_size=4,
                  train__device="cpu")  # fmt: skip
    train(cfg, out, quiet=True)
    return out


def one_line_error(capsys, argv, *needles):
    """``argv`` fails with exit code 2 and one stderr line holding every needle (progress bars aside)."""
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nexnet ")]
    assert code == 2 and len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def train_args(data, out, *more):
    return ["train", "--model", "nexnet_seg_s", "--dataset", "folder", "--data-root", str(data), "--split", "seeded",
            "--out", str(out), "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--device", "cpu",
            "--quiet", *sum((["--set", s] for s in TINY), []), *more]  # fmt: skip


# --- no writer touches source data ---------------------------------------------------------------


def test_predict_never_writes_into_the_input_or_ground_truth_folder(data, run, capsys):
    before = snapshot(data)
    ckpt = str(run / "best")
    for out in (data / "masks", data / "images", data / "masks" / "preds"):
        one_line_error(capsys, ["predict", "--checkpoint", ckpt, "--input", str(data / "images"), "--gt",
                                str(data / "masks"), "--out", str(out), "--overlay"], "nexnet never writes into source data")  # fmt: skip
    assert snapshot(data) == before


def test_predict_refuses_a_folder_of_someone_elses_files_but_reruns_into_its_own(data, run, tmp_path, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.png").write_bytes(b"not ours")
    args = ["predict", "--checkpoint", str(run / "best"), "--input", str(data / "images" / "synthetic_0000.png")]
    one_line_error(capsys, [*args, "--out", str(theirs)], "holds files nexnet did not write (e.g. notes.png)")
    assert (theirs / "notes.png").read_bytes() == b"not ours"
    assert main([*args, "--out", str(tmp_path / "ours")]) == 0
    assert main([*args, "--out", str(tmp_path / "ours")]) == 0  # its own folder: the masks are replaced


def test_score_refuses_one_folder_on_both_sides_and_an_out_inside_the_ground_truth(data, capsys, tmp_path):
    masks = str(data / "masks")
    one_line_error(capsys, ["score", "--pred", masks, "--gt", masks], "--pred and --gt are the same folder")
    pred = tmp_path / "pred"
    pred.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(pred / "synthetic_0000.png")
    one_line_error(capsys, ["score", "--pred", str(pred), "--gt", masks, "--out", masks], "inside the --gt folder")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "summary.json").write_text('{"mine": 1}')
    one_line_error(capsys, ["score", "--pred", str(pred), "--gt", masks, "--out", str(tmp_path / "s")],
                   "already holds a summary.json that nexnet did not write")  # fmt: skip
    assert not (data / "masks" / "summary.json").exists()


def test_score_names_a_missing_pred_folder_before_asking_for_an_out(tmp_path, capsys):
    one_line_error(capsys, ["score", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)],
                   f"--pred {tmp_path / 'nope'}: not a folder")  # fmt: skip


def test_evaluate_train_pretrain_reproduce_and_export_refuse_an_out_inside_the_data(data, run, capsys):
    before = snapshot(data)
    inside = str(data / "results")
    one_line_error(capsys, ["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root",
                            str(data), "--out", inside], "inside the --data-root folder")  # fmt: skip
    one_line_error(capsys, train_args(data, inside), "inside the --data-root folder")
    one_line_error(capsys, ["pretrain", "--dataset", "folder", "--data-root", str(data), "--out", inside,
                            "--image-size", "32"], "inside the --data-root folder")  # fmt: skip
    one_line_error(capsys, ["reproduce", "--table", "1", "--quick", "--data-root", str(data), "--out", inside],
                   "inside the --data-root folder")  # fmt: skip
    one_line_error(capsys, ["export", "--checkpoint", str(run / "best"), "--out", str(data / "images" / "m.onnx"),
                            "--image", str(data / "images" / "synthetic_0000.png")], "inside the --image folder")  # fmt: skip
    assert snapshot(data) == before


def test_an_out_in_the_folder_that_holds_the_datasets_is_refused_but_a_project_folder_is_not(tmp_path, capsys):
    from nexnet.data.discovery import source_folders
    from nexnet.outputs import refuse_inside_sources
    from nexnet.synthetic import make_synthetic_dataset

    datasets = tmp_path / "datasets"
    for name in ("kvasir", "isic"):
        make_synthetic_dataset(datasets / name, n=2, size_range=(16, 16))
    pred = tmp_path / "pred"
    pred.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(pred / "synthetic_0000.png")
    gt = str(datasets / "kvasir" / "masks")
    one_line_error(capsys, ["score", "--pred", str(pred), "--gt", gt, "--out", str(datasets / "score")],
                   f"inside the datasets (holding --gt's dataset) folder {datasets}")  # fmt: skip
    assert sorted(p.name for p in datasets.iterdir()) == ["isic", "kvasir"]

    def guard(out, root=datasets / "kvasir"):  # as train, evaluate and frontier check their --out
        refuse_inside_sources(out, "--out", source_folders("--data-root", root, besides=[out]))

    with pytest.raises(NexnetError, match="inside the datasets \\(holding --data-root's dataset\\) folder"):
        guard(datasets / "runs" / "a")
    guard(tmp_path / "score")  # beside the folder of datasets: fine
    (datasets / "runs").mkdir()
    (datasets / "runs" / "config.yaml").write_text("model: {}\n")  # a run's folder: a workspace, not data
    guard(datasets / "runs2")
    (datasets / "runs" / "config.yaml").unlink()
    with pytest.raises(NexnetError, match="never writes into source data"):
        guard(datasets / "runs2")
    (datasets / ".git").mkdir()  # a repository that keeps its data beside its code: a workspace
    guard(datasets / "runs2")
    proj = tmp_path / "proj"  # not named for data: someone's project, whatever it holds
    for name in ("kvasir", "isic"):
        make_synthetic_dataset(proj / name, n=2, size_range=(16, 16))
    guard(proj / "runs", root=proj / "kvasir")


def test_a_dataset_holding_the_predictions_counts_toward_a_folder_of_datasets(tmp_path, capsys):
    """``score --pred datasets/b/preds``: the predictions are no half of ``a``'s pairs, but ``b``
    around them is a dataset all the same, so ``datasets/`` holds two and ``--out datasets/score``
    is refused."""
    from nexnet.synthetic import make_synthetic_dataset

    datasets = tmp_path / "datasets"
    for name in ("a", "b"):
        make_synthetic_dataset(datasets / name, n=2, size_range=(16, 16))
    (datasets / "b" / "preds").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(datasets / "b" / "preds" / "synthetic_0000.png")
    args = ["score", "--pred", str(datasets / "b" / "preds"), "--gt", str(datasets / "a" / "masks")]
    one_line_error(capsys, [*args, "--out", str(datasets / "score")],
                   f"inside the datasets (holding --gt's dataset) folder {datasets}")  # fmt: skip
    assert not (datasets / "score").exists()
    assert main([*args, "--out", str(tmp_path / "score")]) == 0


def _guard(root, out):
    """As train, evaluate and frontier check their --out."""
    from nexnet.data.discovery import source_folders
    from nexnet.outputs import refuse_inside_sources

    refuse_inside_sources(out, "--out", source_folders("--data-root", root, besides=[out]))


COLLECTION_REFUSED = "inside the datasets \\(holding --data-root's dataset\\) folder"


def _ph2_case(case):
    """PH2's layout for one case: ``IMD002/IMD002_Dermoscopic_Image/IMD002.bmp`` and its lesion mask."""
    for folder, name in (("IMD002_Dermoscopic_Image", "IMD002.bmp"), ("IMD002_lesion", "IMD002_lesion.bmp")):
        (case / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(case / folder / name)


def test_datasets_nested_as_downloaded_count_toward_a_folder_of_datasets(tmp_path):
    """Kvasir-SEG one level down (``kvasir/Kvasir-SEG/images``) and PH2 three levels down, one
    folder per case (``PH2Dataset/PH2 Dataset images/IMD002/IMD002_lesion``): two datasets. A pair
    four levels down is no dataset; a run already in ``runs/`` makes it a workspace; a symlink loop
    ends the look."""
    from nexnet.synthetic import make_synthetic_dataset

    datasets = tmp_path / "datasets"
    make_synthetic_dataset(datasets / "kvasir" / "Kvasir-SEG", n=2, size_range=(16, 16))
    _ph2_case(datasets / "ph2" / "deeper" / "PH2Dataset" / "PH2 Dataset images" / "IMD002")
    (datasets / "ph2" / "loop").symlink_to(datasets / "ph2", target_is_directory=True)
    _guard(datasets / "kvasir", datasets / "runs")  # four levels down: one dataset only
    (datasets / "ph2" / "deeper" / "PH2Dataset").rename(datasets / "ph2" / "PH2Dataset")
    with pytest.raises(NexnetError, match=COLLECTION_REFUSED):
        _guard(datasets / "kvasir", datasets / "runs")
    with pytest.raises(NexnetError, match=COLLECTION_REFUSED):  # the kernel's reading of ..
        _guard(datasets / "ph2" / ".." / "kvasir", datasets / "runs")
    (datasets / "runs" / "a").mkdir(parents=True)
    (datasets / "runs" / "a" / "config.yaml").write_text("model: {}\n")  # a run: runs/ is a workspace
    _guard(datasets / "kvasir", datasets / "runs" / "b")


def test_a_symlinked_dataset_is_judged_by_the_folder_it_is_linked_from(tmp_path):
    """``datasets/kvasir`` links to a disk elsewhere: the folder of datasets is ``datasets/``, where
    the link lies, not the link's target's parent."""
    from nexnet.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "disk" / "kvasir", n=2, size_range=(16, 16))
    datasets = tmp_path / "datasets"
    make_synthetic_dataset(datasets / "isic", n=2, size_range=(16, 16))
    (datasets / "kvasir").symlink_to(tmp_path / "disk" / "kvasir", target_is_directory=True)
    for root in (datasets / "kvasir", datasets / "kvasir" / "images"):
        with pytest.raises(NexnetError, match=COLLECTION_REFUSED):
            _guard(root, datasets / "runs")
    _guard(tmp_path / "disk" / "kvasir", datasets / "runs")  # given by its target: disk/ is no folder of datasets


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--model", "unet"], "the following arguments are required: --out"),
    ],
)
def test_an_unknown_flag_is_named_before_a_missing_required_one(argv, said, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's own exit, in the verb's usage
        main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"nexnet train: error: {said}"


def test_help_still_marks_the_required_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert " --out OUT " in usage and "[--out OUT]" not in usage


def test_every_verb_keeps_the_required_flags_argparse_checks():
    """``refuse_unknown_flags`` relaxes the flags a verb kept; one added another way (a group)
    would still stop the parse at ``required`` before the unknown flag is named."""
    from nexnet.cli import build_parser

    for name, verb in build_parser().verb_parsers.items():
        checked = {a.dest for a in verb._actions if a.required}  # argparse's own list, private
        assert {a.dest for a in verb.required_actions} == checked, name


@pytest.mark.parametrize("verb", ["demo", "reproduce"])
def test_demo_and_reproduce_take_threads(verb, capsys):
    more = ["--table", "1", "--quick"] if verb == "reproduce" else []
    one_line_error(capsys, [verb, *more, "--threads", "0"], "--threads 0: give a positive number")  # set_threads


def test_train_refuses_a_folder_of_someone_elses_files(data, tmp_path, capsys):
    (tmp_path / "paper.tex").write_text("my draft")
    one_line_error(capsys, train_args(data, tmp_path), "holds files nexnet did not write (e.g. paper.tex)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper.tex"]


# --- bad numbers: one line, before any decoding, nothing left behind ------------------------------


@pytest.mark.parametrize("flags, needle", [
    (["--image-size", "230"], "--image-size 230: nexnet_seg_s needs a multiple of 32; use 224 or 256"),
    (["--image-size", "0"], "--image-size 0: use a whole number of at least 32"),
    (["--batch-size", "0"], "--batch-size 0: use a whole number of at least 1 (default 16)"),
    (["--epochs", "0"], "--epochs 0: use a whole number of at least 1 (default 250)"),
    (["--set", "train.lr=-1"], "train.lr -1: use a number above 0"),
    (["--max-minutes", "0"], "--max-minutes 0.0: use a number above 0"),
])  # fmt: skip
def test_bad_training_numbers_fail_in_one_line_before_decoding(data, tmp_path, capsys, monkeypatch, flags, needle):
    import nexnet.data.prepare as runs

    monkeypatch.setattr(runs, "build_arrays", lambda *a, **k: pytest.fail("decoded before checking the options"))
    out = tmp_path / "run"
    one_line_error(capsys, [*train_args(data, out), *flags], needle)
    assert not out.exists()


def test_bad_pretrain_and_profile_sizes_fail_in_one_line(data, tmp_path, capsys):
    one_line_error(capsys, ["pretrain", "--dataset", "folder", "--data-root", str(data), "--out", str(tmp_path / "p"),
                            "--image-size", "230"], "--image-size 230: ssl_autoencoder needs a multiple of 32")  # fmt: skip
    assert not (tmp_path / "p").exists()
    one_line_error(capsys, ["profile", "--models", "unet", "--image-size", "230"], "unet needs a multiple of 16")
    one_line_error(capsys, ["profile", "--models", "unet", "--batch-size", "0"], "--batch-size 0")


def test_a_checkpoint_config_with_bad_values_fails_in_one_line(run, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((run / "best" / "model.safetensors").read_bytes())
    cfg = json.loads((run / "best" / "config.json").read_text())
    cfg["config"]["widths"] = "wide"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NexnetError, match=r"config.json: cannot rebuild the model from its config"):
        nexnet.from_pretrained(bad)


def test_a_warm_up_longer_than_the_run_is_shortened(data, tmp_path, capsys):
    assert main([*train_args(data, tmp_path / "r"), "--epochs", "2", "--set", "train.warmup_epochs=5"]) == 0
    lrs = [float(r.split(",")[5]) for r in (tmp_path / "r" / "log.csv").read_text().splitlines()[1:]]
    assert lrs[0] == pytest.approx(0.003)  # a 0-epoch warm-up: the run's learning rate from the start
    from nexnet.training.run_config import TrainConfig
    from nexnet.training.schedule import warmup_for

    short, note = warmup_for(TrainConfig(epochs=2, warmup_epochs=5, lr=0.003))
    assert short == 0 and note.startswith("note: the 5-epoch warm-up would outlast the 2-epoch run and never reach")


# --- from_pretrained gives a model ready for inference --------------------------------------------


def test_from_pretrained_returns_the_model_in_eval_mode(run):
    model = nexnet.from_pretrained(run / "best")
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert not model.training and torch.equal(first, second)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())


# --- --resume from anywhere, and on data that moved ----------------------------------------------


def test_resume_works_from_another_folder_and_on_moved_data(data, tmp_path, capsys, monkeypatch):
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(data, work / "data")
    monkeypatch.chdir(work)
    args = train_args("data", "runs/r")  # relative paths, as a user types them
    assert main(args) == 0
    monkeypatch.chdir(tmp_path)  # elsewhere: the run records absolute paths
    assert main(["train", "--out", "work/runs/r", "--resume", "--epochs", "2", "--quiet"]) == 0
    (work / "data").rename(tmp_path / "moved")
    resume = ["train", "--out", "work/runs/r", "--resume", "--epochs", "3", "--quiet"]
    assert main([*resume, "--data-root", "moved"]) == 0
    assert len((work / "runs" / "r" / "log.csv").read_text().splitlines()) == 4
    (tmp_path / "moved" / "images" / "synthetic_0000.png").unlink()
    (tmp_path / "moved" / "masks" / "synthetic_0000.png").unlink()
    one_line_error(capsys, [*resume, "--epochs", "4", "--data-root", "moved"], "cases are not in the data")


def test_a_refused_run_prints_its_refusal_alone(tmp_path, capsys):
    # Default 5-epoch warm-up in a 1-epoch run: its note waits for the run to start.
    argv = ["train", "--model", "nexnet_seg_s", "--dataset", "folder", "--data-root", str(tmp_path / "nope"),
            "--epochs", "1", "--image-size", "32", "--device", "cpu", "--out", str(tmp_path / "r")]  # fmt: skip
    one_line_error(capsys, argv, "--data-root")
    assert main(argv) == 2 and "warm-up" not in capsys.readouterr().out


def test_a_finished_run_resumed_says_what_would_train_it_on_without_a_warm_up_note(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main([a for a in train_args(data, run) if a != "--quiet"]) == 0  # 1 epoch, warm-up 1: a note
    assert "warm-up" in capsys.readouterr().out
    assert main(["train", "--out", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "already trained for --epochs 1; resume with a larger --epochs" in out and "warm-up" not in out


def test_resume_refuses_a_change_it_would_otherwise_ignore(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data, run)) == 0
    again = [*train_args(data, run), "--resume", "--epochs", "2"]  # the run's own command, resumed: fine
    assert main(again) == 0
    assert len((run / "log.csv").read_text().splitlines()) == 3
    one_line_error(capsys, [*again, "--batch-size", "2"], "train.batch_size is 4 in the run", "2 on this command line")
    one_line_error(capsys, [*again, "--set", "train.lr=0.5"], "train.lr is 0.003", "choose a new --out")
    one_line_error(capsys, ["train", "--out", str(run), "--resume", "--model", "unet"], "model.name is 'nexnet_seg_s'")
    one_line_error(capsys, ["train", "--out", str(run), "--resume", "--freeze-encoder"], "goes with --ssl-checkpoint")
    one_line_error(capsys, [*again, "--set", "train=3"], "'train' is a section")
    assert main([*again, "--set", "train.epochs=3"]) == 0  # a resumable key, from --set too: applied
    assert len((run / "log.csv").read_text().splitlines()) == 4


def test_resume_accepts_the_runs_own_command_however_it_was_written(data, tmp_path, monkeypatch, capsys):
    import shutil

    from nexnet.data import DataConfig, discover_and_split
    from nexnet.training import RunFolder

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "configs" / "paper_exact.yaml", work / "exact.yaml")
    discover_and_split(DataConfig("folder", str(data), "seeded"))[1].save(work / "mysplit.json")
    monkeypatch.chdir(work)  # relative paths, as typed
    first = [
        "train",
        "--model",
        "nexnet_seg_s",
        "--dataset",
        "folder",
        "--data-root",
        str(data),
        "--split",
        "mysplit.json",
        "--out",
        "run",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--config",
        "exact.yaml",
        *sum((["--set", s] for s in TINY), []),
        "--set",
        "model.tpen_init=linear",
    ]  # the paper form made custom by one keyword
    assert main(first) == 0
    monkeypatch.chdir(tmp_path)  # elsewhere, with the split file's absolute path
    absolute = {name: str(work / name) for name in ("mysplit.json", "exact.yaml", "run")}
    again = [absolute.get(a, a) for a in first]
    assert main([*again, "--resume", "--epochs", "2"]) == 0
    cfg = RunFolder(work / "run").read_run_config()
    assert cfg.model["form"] == "custom" and cfg.data.split == str(work / "mysplit.json") and cfg.train.epochs == 2
    # The Python API resumes from the run's own config.
    assert (
        nexnet.training.train(cfg.merged({"train": {"epochs": 3}}), work / "run", resume=True, quiet=True)["epoch"] == 3
    )
    one_line_error(
        capsys, ["pretrain", "--out", str(work / "run"), "--resume", "--lr", "0.1"], "not a pretraining run's"
    )


# --- the tour: predict and score the test split only ------------------------------------------------


def test_predict_and_score_keep_to_one_part_of_the_split(data, run, tmp_path):
    split = json.loads((run / "split.json").read_text())
    args = ["--split-file", str(run / "split.json"), "--subset", "test"]
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "images"), "--out",
                 str(tmp_path / "p"), *args]) == 0  # a run folder stands for its best/  # fmt: skip
    assert sorted(p.stem for p in (tmp_path / "p").glob("*.png")) == sorted(split["test"])
    assert main(["score", "--pred", str(tmp_path / "p"), "--gt", str(data / "masks"), *args]) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["cases"] == len(split["test"]) and summary["missing_predictions"]["count"] == 0


def test_train_help_gives_the_defaults_and_where_they_come_from(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default 250 (configs/default.yaml)" in text and "default 16 (configs/default.yaml)" in text
    assert "default 224" in text and "(default: [])" not in text


def test_last_checkpoint_can_be_evaluated(data, run, tmp_path):
    from nexnet.evaluation import evaluate

    s = evaluate(run / "last", "folder", data, out=tmp_path / "e", device="cpu", say=lambda m: None)
    assert s["cases"] == len(json.loads((run / "split.json").read_text())["test"])


def test_predictor_gives_python_users_what_predict_writes(data, run, tmp_path):
    image_file = data / "images" / "synthetic_0003.png"
    assert main(["predict", "--checkpoint", str(run / "best"), "--input", str(image_file), "--out",
                 str(tmp_path / "p")]) == 0  # fmt: skip
    written = np.asarray(Image.open(tmp_path / "p" / "synthetic_0003.png")) > 127
    predictor = nexnet.Predictor.from_pretrained(run, device="cpu")  # a run folder: its best/
    image = np.asarray(Image.open(image_file).convert("RGB"))
    for given in (image, Image.open(image_file), image_file):
        mask = predictor(given)
        assert mask.dtype == bool and mask.shape == image.shape[:2] and np.array_equal(mask, written)
    with pytest.raises(NexnetError, match=r"expected an \(H, W, 3\) uint8 RGB array"):
        predictor(image.astype(np.float32))


# --- more careless inputs (review of issue 14) -----------------------------------------------------


def test_export_never_replaces_a_file_it_did_not_write(run, tmp_path, capsys):
    pytest.importorskip("onnx")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    one_line_error(capsys, ["export", "--checkpoint", str(run / "best"), "--out", str(notes)],
                   "exists and was not written by nexnet export")  # fmt: skip
    one_line_error(capsys, ["export", "--checkpoint", str(run / "best"), "--out", str(run / "best" / "m.onnx")],
                   "inside the --checkpoint folder")  # fmt: skip
    assert notes.read_text() == "mine" and not (run / "best" / "m.onnx").exists()


@pytest.mark.parametrize("key, value, needle", [
    ("image_size", 230, "image_size 230 must be a multiple of 32"),
    ("image_size", "abc", "image_size 'abc' must be a multiple of 32"),
    ("threshold", 7, "threshold 7 must be a number between 0 and 1"),
])  # fmt: skip
def test_a_checkpoint_with_bad_settings_is_refused_before_decoding(data, run, tmp_path, capsys, key, value, needle):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("model.safetensors", "config.json"):
        (bad / f).write_bytes((run / "best" / f).read_bytes())
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, key: value}))
    one_line_error(capsys, ["evaluate", "--checkpoint", str(bad), "--dataset", "folder", "--data-root", str(data),
                            "--out", str(tmp_path / "e")], needle)  # fmt: skip


@pytest.mark.parametrize("setting, needle", [
    ("train.weight_decay=-1", "train.weight_decay -1: use a number 0 or more"),
    ("augment.rotate_degrees=abc", "augment.rotate_degrees 'abc': use a number 0 or more"),
    ("augment.hflip=2", "augment.hflip 2: use a number from 0 to 1"),
    ("train.tpen_lr_scale=-1", "train.tpen_lr_scale -1: use a number above 0"),
    ("loss.pos_weight=-3", "loss.pos_weight -3: use auto"),
])  # fmt: skip
def test_bad_config_values_fail_in_one_line_and_leave_nothing(data, tmp_path, capsys, setting, needle):
    one_line_error(capsys, [*train_args(data, tmp_path / "r"), "--set", setting], needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, needle", [
    (["--lr", "0"], "--lr 0.0: use a number above 0"),
    (["--noise", "-1"], "--noise -1.0: use a number 0 or more"),
    (["--workers", "0"], "--workers 0: use a whole number of at least 1"),
    (["--split-seed", "-1"], "--split-seed -1: use a whole number of at least 0"),
])  # fmt: skip
def test_bad_pretrain_numbers_fail_in_one_line(data, tmp_path, capsys, flags, needle):
    one_line_error(capsys, ["pretrain", "--dataset", "folder", "--data-root", str(data), "--out", str(tmp_path / "p"),
                            "--image-size", "32", *flags], needle)  # fmt: skip
    assert not (tmp_path / "p").exists()


def test_an_out_that_is_a_file_and_a_pretrain_resume_of_a_train_run_fail_in_one_line(data, run, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(capsys, train_args(data, afile), "is a file; give a folder")
    one_line_error(capsys, ["pretrain", "--out", str(run), "--resume"], "not a pretraining run's")


def test_score_writes_its_summary_only_where_nexnet_may_write(data, run, tmp_path, capsys):
    masks = str(data / "masks")
    preds = tmp_path / "theirs"
    preds.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(preds / "synthetic_0000.png")
    one_line_error(capsys, ["score", "--pred", masks, "--gt", str(preds)], "was not written by nexnet predict")
    assert not (data / "masks" / "summary.json").exists()


def test_demo_refuses_a_folder_of_other_files_and_a_zero_budget(tmp_path, capsys):
    (tmp_path / "thesis.pdf").write_text("mine")
    one_line_error(capsys, ["demo", "--out", str(tmp_path)], "holds files nexnet did not write (e.g. thesis.pdf)")
    one_line_error(capsys, ["demo", "--out", str(tmp_path / "d"), "--seconds", "0"], "--seconds 0: give a training")


def test_evaluate_split_seed_without_split_and_an_edited_split_file_are_refused(data, run, tmp_path, capsys):
    args = ["evaluate", "--checkpoint", str(run / "best"), "--dataset", "folder", "--data-root", str(data)]
    one_line_error(capsys, [*args, "--split-seed", "4", "--out", str(tmp_path / "e")], "goes with --split NAME")
    edited = tmp_path / "best"
    edited.mkdir()
    for f in (run / "best").iterdir():
        (edited / f.name).write_bytes(f.read_bytes())
    split = json.loads((edited / "split.json").read_text())
    split["test"], split["train"] = split["train"][:5], split["train"][5:] + split["test"]
    (edited / "split.json").write_text(json.dumps(split))
    one_line_error(capsys, [*args[:2], str(edited), *args[3:]], "differs from the split")


def test_the_ssl_autoencoder_is_not_evaluated_as_a_segmentation_model(data, tmp_path, capsys):
    nexnet.create_model("ssl_autoencoder", widths=[4, 4, 8, 8, 8, 8]).save_pretrained(tmp_path / "ae")
    one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "ae"), "--dataset", "folder", "--data-root",
                            str(data)], "holds the SSL pretraining autoencoder")  # fmt: skip


def test_check_data_splits_as_train_does_when_a_pair_is_unreadable(data, tmp_path):
    import shutil

    copy = tmp_path / "d"
    shutil.copytree(data, copy)
    (copy / "images" / "synthetic_0002.png").write_bytes(b"broken")
    assert main(["check-data", "--dataset", "folder", "--data-root", str(copy), "--split", "seeded", "--skip-bad",
                 "--split-out", str(tmp_path / "s.json")]) == 0  # fmt: skip
    assert main([*train_args(copy, tmp_path / "r"), "--skip-bad"]) == 0
    checked = json.loads((tmp_path / "s.json").read_text())
    trained = json.loads((tmp_path / "r" / "split.json").read_text())
    assert {k: checked[k] for k in ("train", "val", "test")} == {k: trained[k] for k in ("train", "val", "test")}


def test_quiet_silences_the_decoding_bar_and_outputs_are_readable_by_the_group(data, tmp_path, capsys):
    import os
    import stat

    assert main(train_args(data, tmp_path / "r")) == 0  # train_args passes --quiet
    assert "decoding" not in capsys.readouterr().err and "NEXNET_QUIET" not in os.environ
    umask = os.umask(0)
    os.umask(umask)
    for f in (tmp_path / "r" / "best" / "model.safetensors", tmp_path / "r" / "log.csv"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "r" / "best").stat().st_mode) == 0o777 & ~umask


def test_cache_clear_removes_only_the_cache_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEXNET_CACHE_DIR", str(tmp_path))
    for part in ("arrays", "facts"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "x.bin").write_bytes(b"0" * 2048)
    (tmp_path / "mine.txt").write_text("keep")
    assert main(["cache"]) == 0 and "0.0 MiB" in capsys.readouterr().out
    assert main(["cache", "--clear"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_an_out_through_a_symlink_loop_is_one_line(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for folder in (pred, gt):
        folder.mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    one_line_error(capsys, ["score", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "loop_a" / "x")],
                   "points back at itself", "fix or remove the link")  # fmt: skip


def test_a_loop_met_as_an_os_error_is_one_line_too(monkeypatch, capsys):
    """Where ``resolve()`` does not raise on a loop (Python 3.13), the first open through it fails
    with ELOOP: the same one line."""
    from nexnet.cli import models

    def opens_through_a_loop(args):
        raise OSError(errno.ELOOP, "Too many levels of symbolic links", "runs/loop/x")

    monkeypatch.setattr(models, "run", opens_through_a_loop)
    one_line_error(capsys, ["models"], "Too many levels of symbolic links", "fix or remove the link")

    def not_found(args):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(models, "run", not_found)
    with pytest.raises(FileNotFoundError):  # any other OSError is a defect: its traceback stays
        main(["models"])


@pytest.mark.parametrize(
    ("code", "fix"),
    [(errno.EACCES, "change its permissions"), (errno.EPERM, "change its permissions"),
     (errno.EROFS, "read-only"), (errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "quota")],
)  # fmt: skip
def test_what_the_machine_refuses_is_one_line_with_the_fix(monkeypatch, capsys, code, fix):
    """Permission denied on --out (root writes anywhere, so the refusal is raised by hand), a
    read-only file system or a full disk: one line naming the path and the fix, no traceback."""
    from nexnet.cli import models

    def refused(args):
        raise OSError(code, os.strerror(code), "runs/x/best")

    monkeypatch.setattr(models, "run", refused)
    line = one_line_error(capsys, ["models"], "runs/x/best", fix)
    assert " for --" not in line  # no option gave that path


def test_a_full_disk_in_training_says_how_to_continue(monkeypatch, capsys, tmp_path):
    """Training keeps every finished epoch, so the line says how to resume once there is space."""
    from nexnet.cli import train

    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "last"))

    monkeypatch.setattr(train, "run", disk_full)
    argv = ["train", "--model", "unet", "--dataset", "kvasir", "--data-root", str(tmp_path), "--out",
            str(tmp_path / "run")]  # fmt: skip
    one_line_error(capsys, argv, "the disk is full", "--resume")


def _refuse_temporaries(monkeypatch, folder):
    """The atomic writers' temporary files and folders in ``folder`` are refused, as a folder that
    one may not write refuses them (root writes anywhere, so the refusal is raised by hand)."""
    import tempfile

    from nexnet import io

    def refusing(make):
        def refused(suffix="", prefix="tmp", dir=None):
            if Path(dir) != folder:
                return make(suffix, prefix, dir)
            raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, f"{prefix}k3x9{suffix}"))

        return refused

    monkeypatch.setattr(io.tempfile, "mkstemp", refusing(tempfile.mkstemp))
    monkeypatch.setattr(io.tempfile, "mkdtemp", refusing(tempfile.mkdtemp))


def test_a_refused_write_names_the_file_asked_for_not_its_temporary(monkeypatch, tmp_path):
    from nexnet import io

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write names no file

    with monkeypatch.context() as m:
        m.setattr(io.os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space left") as e:
            io.atomic_write_json(tmp_path / "a.json", {})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "a.json")
    with pytest.raises(OSError) as e, io.atomic_directory(tmp_path / "best") as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.safetensors"))
    assert e.value.filename == str(tmp_path / "best" / "model.safetensors")  # a file inside, named inside
    with pytest.raises(FileNotFoundError) as e, io.atomic_directory(tmp_path / "best"):
        open(tmp_path / "elsewhere" / "x")  # noqa: SIM115  (about another file: left as it is)
    assert e.value.filename == str(tmp_path / "elsewhere" / "x")
    _refuse_temporaries(monkeypatch, tmp_path)
    for write in (lambda p: io.atomic_write_json(p, {}), lambda p: io.write_with(p, Path.touch),
                  lambda p: io.atomic_directory(p).__enter__()):  # fmt: skip
        with pytest.raises(PermissionError) as e:
            write(tmp_path / "split.json")
        assert e.value.filename == str(tmp_path / "split.json") and isinstance(e.value.__cause__, PermissionError)
    assert not list(tmp_path.glob(".*"))


def test_a_refused_write_names_the_option_that_gave_the_path(data, monkeypatch, tmp_path, capsys):
    """check-data --split-out into a folder it may not write: the line names the file and --split-out."""
    split = tmp_path / "notes" / "split.json"
    _refuse_temporaries(monkeypatch, split.parent)
    argv = ["check-data", "--dataset", "folder", "--data-root", str(data), "--split-out", str(split)]
    line = one_line_error(capsys, argv, f"Permission denied: '{split}'", "choose a path for --split-out")
    assert ".tmp" not in line and "k3x9" not in line


def test_a_refused_decode_cache_costs_one_note_not_the_command(data, monkeypatch, capsys):
    from nexnet.data import cache

    monkeypatch.setattr(cache, "_SAID_NOT_KEPT", [])
    _refuse_temporaries(monkeypatch, cache.cache_root() / "facts")
    assert main(["check-data", "--dataset", "folder", "--data-root", str(data)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nexnet")]
    assert len(notes) == 1 and "decode cache is not kept" in notes[0], notes
    assert f"Permission denied: {cache.cache_root() / 'facts'}" in notes[0] and "NEXNET_CACHE_DIR" in notes[0]
    assert not (cache.cache_root() / "facts").exists() or not any((cache.cache_root() / "facts").iterdir())


def test_arrays_decoded_into_memory_equal_the_cached_ones(data, monkeypatch, capsys):
    from nexnet.data import cache, get_adapter

    monkeypatch.setattr(cache, "_SAID_NOT_KEPT", [])
    pairs = get_adapter("folder").discover(data).pairs
    with monkeypatch.context() as m:
        _refuse_temporaries(m, cache.cache_root() / "arrays")
        held = cache.build_arrays(pairs, 32, workers=1)
    assert not isinstance(held.images, np.memmap) and not cache.is_cached(pairs, 32)
    assert capsys.readouterr().err.count("decode cache is not kept") == 1
    kept = cache.build_arrays(pairs, 32, workers=1)
    assert isinstance(kept.images, np.memmap) and cache.is_cached(pairs, 32)
    assert held.ids == kept.ids and held.facts == kept.facts
    assert np.array_equal(held.images, kept.images) and np.array_equal(held.masks, kept.masks)
