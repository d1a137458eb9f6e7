"""Training on tiny synthetic data: the recipe, schedule and loss, resumable state, DDP, AMP, compile."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tiny import cli_train, free_port, log_rows, tiny_cfg

import nexnet
from nexnet.cli import main
from nexnet.errors import NexnetError
from nexnet.training.config import DEFAULTS, PAPER_FORM, PAPER_RECIPE, resolve
from nexnet.training.losses import DiceBCELoss, positive_weight
from nexnet.training.schedule import WarmupPlateau
from nexnet.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def test_default_yaml_is_the_default_recipe_and_paper_exact_the_papers():
    assert yaml.safe_load((ROOT / "configs" / "default.yaml").read_text()) == DEFAULTS
    assert yaml.safe_load((ROOT / "configs" / "paper_recipe.yaml").read_text()) == PAPER_RECIPE
    assert yaml.safe_load((ROOT / "configs" / "paper_exact.yaml").read_text()) == {**PAPER_RECIPE, **PAPER_FORM}
    paper = resolve(ROOT / "configs" / "paper_exact.yaml")
    # the spec's recipe
    expected = {"batch_size": 64, "lr": 1e-4, "weight_decay": 1e-4, "schedule": "plateau", "warmup_epochs": 5,
                "plateau_factor": 0.5, "plateau_patience": 10, "min_lr": 1e-6, "early_stop": 30, "grad_clip": 0.5,
                "epochs": 250, "tpen_lr_scale": 1.0, "tpen_weight_decay": None}  # fmt: skip
    assert {k: getattr(paper.train, k) for k in expected} == expected
    assert paper.data.image_size == 224 and paper.model == {"name": "nexnet_seg", "form": "paper"}
    layered = resolve([ROOT / "configs" / "paper_exact.yaml", ROOT / "configs" / "ablation" / "no_masa.yaml"])
    assert layered.model["form"] == "paper" and layered.model["masa"] is False and layered.train.lr == 1e-4


def test_warmup_then_plateau_schedule():
    s = WarmupPlateau(1.0, warmup_epochs=4, factor=0.5, patience=2, min_lr=0.1)
    assert [s.lr_for(e) for e in range(4)] == [0.25, 0.5, 0.75, 1.0]
    for epoch, score in [(4, 0.5), (5, 0.4), (6, 0.4), (7, 0.4)]:
        s.lr_for(epoch)
        s.step(epoch, score)
    assert s.lr_for(8) == 0.5  # three epochs without improvement > patience 2
    for epoch in range(9, 30):
        s.step(epoch, 0.0)
    assert s.lr_for(30) == 0.1  # floored at min_lr


def test_dice_bce_loss_and_pos_weight():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[:, :1] = 1  # 8 of 32 pixels
    assert positive_weight(masks) == 3.0
    logits = torch.full((1, 1, 2, 2), 100.0)
    target = torch.ones(1, 1, 2, 2)
    assert DiceBCELoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    zero = torch.zeros(1, 1, 2, 2)
    # BCE: (2 positives x 3 log 2 + 2 negatives x log 2) / 4; Dice: (2*1 + 1) / (2 + 2 + 1) = 0.6
    expected = 2 * np.log(2) + (1 - 0.6)
    half = DiceBCELoss(pos_weight=3.0)(zero, torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]]))
    assert half.item() == pytest.approx(expected, rel=1e-5)


def test_bad_precision_fails_before_decoding(data, tmp_path):
    with pytest.raises(nexnet.NexnetError, match="amp fp16 needs CUDA"):
        train(tiny_cfg(data, extra=["train.amp=fp16"]), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_bf16_on_a_cpu_without_amx_is_flagged(monkeypatch):
    from nexnet.runtime import slow_autocast_note

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert "no AMX" in slow_autocast_note(torch.bfloat16, cpu)
    assert slow_autocast_note(None, cpu) == ""  # float32: nothing to say
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert slow_autocast_note(torch.bfloat16, cpu) == ""


def test_non_finite_loss_is_skipped_and_counted(data, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = DiceBCELoss.forward

    def sometimes_nan(self, logits, targets):
        calls["n"] += 1
        loss = original(self, logits, targets)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(DiceBCELoss, "forward", sometimes_nan)
    train(tiny_cfg(data, epochs=1), tmp_path / "run", quiet=True)
    header, row = (tmp_path / "run" / "log.csv").read_text().splitlines()[:2]
    rec = dict(zip(header.split(","), row.split(",")))
    steps_planned = 16 // 4  # 24 cases: 20% test, 10% of the rest val -> 16 train, batch 4
    assert rec["skipped_batches"] == "1" and int(rec["optimizer_steps"]) == steps_planned - 1


def test_same_seed_gives_identical_metrics(data, tmp_path):
    a = train(tiny_cfg(data), tmp_path / "a", quiet=True)
    b = train(tiny_cfg(data), tmp_path / "b", quiet=True)
    cols = lambda run: [r.split(",")[1:5] for r in log_rows(run)]  # losses and val metrics
    assert cols(tmp_path / "a") == cols(tmp_path / "b") and a["best_score"] == b["best_score"]


def test_checkpoint_write_is_atomic(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    before = (run / "best" / "model.safetensors").read_bytes()
    import nexnet.models.base as base

    def crash(path, data):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(base, "atomic_write_bytes", crash)
    model = base.from_pretrained(run / "best")
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(run / "best")
    assert (run / "best" / "model.safetensors").read_bytes() == before
    assert base.from_pretrained(run / "best") is not None
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_existing_run_needs_resume(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    with pytest.raises(Exception, match="pass --resume"):
        train(tiny_cfg(data, epochs=1), run, quiet=True)


def test_run_config_records_the_model_in_full_and_old_runs_resume_as_the_paper_form(data, tmp_path):
    run = tmp_path / "run"
    old_release = ["model.form=paper", "train.schedule=plateau", "train.tpen_lr_scale=1", "train.tpen_weight_decay=null"]  # fmt: skip
    train(tiny_cfg(data, epochs=1, extra=old_release), run, quiet=True)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["encoder_chain"] == "nex" and saved["model"]["dropout"] == 0.2  # resolved, not implied
    for key in ("form", "tpen_init", "encoder_chain", "masa_from", "dropout"):  # as before forms
        del saved["model"][key]
    for key in ("schedule", "tpen_lr_scale", "tpen_weight_decay"):
        del saved["train"][key]
    saved["train"]["epochs"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    resumed = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert (resumed["form"], resumed["encoder_chain"], resumed["tpen_init"]) == ("paper", "nex", "log1p")
    assert resumed["masa_from"] == 1
    lrs = [float(r.split(",")[5]) for r in log_rows(run)]
    assert len(lrs) == 2 and lrs[1] == 0.003  # the old run's plateau schedule, not today's cosine


def test_a_revised_run_from_before_masa_from_resumes_with_attention_at_every_level(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1, extra=["model.form=revised"]), run, quiet=True)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["masa_from"] == 1
    del saved["model"]["masa_from"]  # as a run from before the lean form recorded it
    saved["train"]["epochs"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    resumed = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert (resumed["form"], resumed["masa_from"]) == ("revised", 1)
    assert len(log_rows(run)) == 2


def test_a_lean_run_from_before_the_residual_form_resumes_as_the_lean_network(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1, extra=["model.form=lean"]), run, quiet=True)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # as a run from before the residual form recorded it
    for key in ("dilation", "residual", "masa_zero_init", "decoder_projection"):
        del saved["model"][key]
    saved["train"]["epochs"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    resumed = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert (resumed["form"], resumed["dilation"], resumed["residual"]) == ("lean", 2, False)
    assert len(log_rows(run)) == 2


def test_a_resumed_run_keeps_its_recorded_model_whoever_resumes_it(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(data, epochs=1), run, quiet=True)
    train(tiny_cfg(data, epochs=2, extra=["model.form=paper"]), run, resume=True, quiet=True)
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["form"] == "residual"
    with pytest.raises(NexnetError, match="holds a run of 'nexnet_seg_s', not 'unet'"):
        train(resolve(None, ["model.base_width=4"], model__name="unet", data__dataset="folder",
                      data__data_root=str(data), data__split="seeded", data__image_size=32, train__epochs=3,
                      train__batch_size=4, train__device="cpu"), run, resume=True, quiet=True)  # fmt: skip


def test_sigkill_mid_epoch_then_resume_finishes(data, tmp_path):
    run = tmp_path / "run"
    slow = ["--set", "model.widths=[8,8,16,16,16,16]", "--image-size", "64", "--batch-size", "2"]
    proc = subprocess.Popen(cli_train(data, run, "--epochs", "4", *slow), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "last" / "state.json").is_file():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads((run / "last" / "state.json").read_text())["epoch"]
    assert 1 <= done < 4, "the kill should land before the last epoch"
    r = subprocess.run([sys.executable, "-m", "nexnet", "train", "--out", str(run), "--resume", "--quiet"],
                       capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert [int(row.split(",")[0]) for row in log_rows(run)] == [1, 2, 3, 4]


def test_two_process_gloo_torchrun(data, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
           "-m", "nexnet", *cli_train(data, run, "--epochs", "2")[3:]]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((run / "last" / "state.json").read_text())
    batches = 16 // 4  # 16 training cases, batch 4 per process, drop_last
    per_rank = (batches - batches % 2) // 2
    assert state["optimizer_steps"] == 2 * per_rank


def test_bf16_autocast_training_on_cpu(data, tmp_path):
    result = train(tiny_cfg(data, epochs=1, extra=["train.amp=true"]), tmp_path / "run", quiet=True)
    row = log_rows(tmp_path / "run")[0].split(",")
    assert result["optimizer_steps"] == 4 and np.isfinite(float(row[1])) and row[7] == "0"


def test_compiled_training_saves_plain_checkpoints(data, tmp_path):
    # The "eager" backend runs torch.compile's graph capture without code generation: fast on CPU.
    from torch._dynamo.utils import counters

    counters.clear()
    result = train(tiny_cfg(data, epochs=1, extra=["train.compile=eager"]), tmp_path / "run", quiet=True)
    assert result["optimizer_steps"] == 4 and counters["stats"]["unique_graphs"] > 0  # it did compile
    model = nexnet.from_pretrained(tmp_path / "run" / "best").eval()  # refuses "_orig_mod."-prefixed weights
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_run_folder_refuses_in_one_line_and_reads_what_it_wrote(tmp_path):
    from nexnet.training import RunFolder

    data = tmp_path / "data"
    data.mkdir()
    folder = RunFolder(tmp_path / "run")
    folder.refuse_unless_writable(False, [str(data)])  # a new folder: nothing to refuse
    folder.write_config({"train": {"epochs": 3}})
    assert folder.read_config() == {"train": {"epochs": 3}} and folder.config.name == "config.yaml"
    folder.last.mkdir()
    with pytest.raises(NexnetError, match="already holds a run; pass --resume"):
        folder.refuse_unless_writable(False, [])
    folder.refuse_unless_writable(True, [None])  # resuming it is fine
    with pytest.raises(NexnetError, match="inside the --data-root folder"):
        RunFolder(data / "out").refuse_unless_writable(False, [None, str(data)])
    (folder.path / "notes.txt").write_text("mine")
    with pytest.raises(NexnetError, match="did not write"):
        folder.refuse_unless_writable(True, [])
    with pytest.raises(NexnetError, match="holds no config.yaml"):
        RunFolder(tmp_path / "empty").read_config()


def test_the_run_config_is_typed_and_refuses_unknown_keys_in_one_line():
    from nexnet.training import RunConfig

    cfg = resolve(None, ["train.lr=3e-4", "model.gamma=rmt"], model__name="unet", data__image_size=64)
    assert (cfg.train.lr, cfg.data.image_size, cfg.model_name, cfg.model_kwargs()) == (
        3e-4,
        64,
        "unet",
        {"gamma": "rmt"},
    )
    assert RunConfig.from_dict(cfg.to_dict()) == cfg and RunConfig().to_dict() == DEFAULTS
    assert cfg.merged({"train": {"epochs": 3}}).train.epochs == 3 and cfg.train.epochs == 250  # a copy
    for bad, words in (
        (["train.lr_max=1"], "unknown config key 'train.lr_max'"),
        (["trian.lr=1"], "unknown config key 'trian'"),
    ):
        with pytest.raises(NexnetError, match=words):
            resolve(None, bad)
    with pytest.raises(NexnetError, match="unknown config key 'data.root'"):
        RunConfig.from_dict({"data": {"root": "x"}})
    # A run saved before the cosine schedule and the T-PEN group existed resumes as it trained.
    old = RunConfig.from_dict({"model": {"name": "nexnet_seg"}, "train": {"lr": 1e-4}}, saved=True)
    assert (old.train.schedule, old.train.tpen_lr_scale, old.train.tpen_weight_decay) == ("plateau", 1.0, None)
    assert RunConfig.from_dict({"train": {"lr": 1e-4}}).train.schedule == "cosine"  # a new run: today's default


def test_optimizer_is_fused_on_cpu_keeps_the_coefficient_group_and_steps_as_plain_adam():
    from nexnet.training.optim import build_optimizer, can_fuse

    torch.manual_seed(0)
    model = nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8])
    tc = resolve().train
    optimizer, trainable = build_optimizer(model, tc)
    assert all(group["fused"] for group in optimizer.param_groups)
    coefficient_group = optimizer.param_groups[1]
    assert coefficient_group["lr_scale"] == tc.tpen_lr_scale and len(coefficient_group["params"]) == 6
    assert not can_fuse([torch.zeros(2, dtype=torch.int64)]) and not can_fuse([])
    for group in optimizer.param_groups:
        group["lr"] = tc.lr * group["lr_scale"]  # as Stepper.set_lr does
    twins = {id(p): p.detach().clone().requires_grad_() for p in trainable}
    groups = [{**{k: v for k, v in g.items() if k not in ("params", "fused")},
               "params": [twins[id(p)] for p in g["params"]]} for g in optimizer.param_groups]  # fmt: skip
    plain = torch.optim.Adam(groups, foreach=False)
    twins = [twins[id(p)] for p in trainable]
    start = [p.detach().clone() for p in trainable]
    for step in range(4):  # several steps: the moments, betas and bias correction all matter
        for p, q in zip(trainable, twins):
            p.grad = torch.randn_like(p) * (step + 1)
            q.grad = p.grad.clone()
        optimizer.step()
        plain.step()
    for p, q in zip(trainable, twins):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert all(not torch.equal(p, s) for p, s in zip(trainable, start))


def test_a_run_saved_with_plain_adam_resumes_fused_and_steps_with_a_grad_scaler(tmp_path):
    from nexnet.training.optim import build_optimizer
    from nexnet.training.state import load_training_state, save_training_state

    model = nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8])
    tc = resolve().train
    fused, _ = build_optimizer(model, tc)
    old = torch.optim.Adam([{k: v for k, v in g.items() if k != "fused"} for g in fused.param_groups],
                           foreach=False)  # as a run saved before the fused step  # fmt: skip
    assert [g["fused"] for g in old.param_groups] == [None, None]
    model(torch.rand(2, 3, 32, 32)).mean().backward()
    old.step()
    save_training_state(tmp_path / "last", model, old, {"epoch": 1})
    optimizer, _ = build_optimizer(model, tc)
    assert load_training_state(tmp_path / "last", model, optimizer) == {"epoch": 1}
    assert [g["fused"] for g in optimizer.param_groups] == [True, True]
    scaler = torch.amp.GradScaler("cpu")  # as fp16 on CUDA: the scaler hands its found_inf to the fused step
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad()
    scaler.scale(model(torch.rand(2, 3, 32, 32)).mean()).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
