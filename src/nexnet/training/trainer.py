"""``nexnet train``: the training loop, with resumable state, DDP and AMP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data import BatchLoader, RunData, Split, discover_and_split, prepare_data
from ..errors import NexnetError
from ..evaluation import VALIDATION_METRICS, batch_metrics
from ..models import load_ssl_encoder
from ..outputs import SEEN, SPLIT
from ..runtime import autocast, autocast_dtype, pick_device, place_model, precision_name, slow_autocast_note
from . import distributed as D
from .diagnostics import TPENProbe
from .ema import WeightAverage
from .epoch import Stepper, fit_epoch
from .losses import DiceBCELoss, positive_weight
from .optim import build_optimizer
from .resolution import ResolvedRun, resolve_config
from .run_config import RunConfig, TrainConfig
from .run_folder import RunFolder
from .schedule import budget_reached, budget_spent, make_schedule, warmup_for
from .ssl_checkpoint import check_ssl_ids, check_ssl_pixels, ssl_seen_hashes


@torch.no_grad()
def validate(model: torch.nn.Module, loader: BatchLoader, loss_fn: torch.nn.Module,
             amp: torch.dtype | None, device: torch.device) -> dict[str, float]:  # fmt: skip
    """``val_loss`` and the mean per-image ``val_NAME`` of each of :data:`VALIDATION_METRICS`, at
    threshold 0.5 and network resolution."""
    model.eval()
    losses, scores = [], {name: [] for name in VALIDATION_METRICS}
    for batch in loader:
        with autocast(amp, device):
            logits = model(batch.images)
        logits = logits.float()
        losses.append(loss_fn(logits, batch.masks).item() * len(batch.index))
        for name, values in batch_metrics(logits > 0, batch.masks).items():
            scores[name] += values.tolist()
    n = max(len(scores["dice"]), 1)
    return {"val_loss": sum(losses) / n, **{f"val_{name}": float(np.mean(v)) for name, v in scores.items()}}


def train(run: ResolvedRun | RunConfig | dict, out: str | Path, resume: bool = False,
          quiet: bool = False) -> dict[str, Any]:  # fmt: skip
    """Train a model, writing the run folder ``out``.

    Args:
        run: what ``resolve_run`` made, taken as it is; or a config (a ``RunConfig``, or its nested
            dicts), resolved here by ``resolve_config``: its paths made absolute and its model built.
        out: the run folder: ``config.yaml``, ``split.json``, ``best/``, ``last/``, ``log.csv``.
        resume: continue the run in ``out``. Its model is the one the run recorded; a config passed
            with it should be that run's own, ``RunFolder(out).read_run_config()``, changed at most
            in its epochs, time budget and device.
        quiet: no progress output.

    Returns:
        The final state (``best_score``: the best validation ``train.select`` score, ``best_epoch``,
        ``epoch``, ``optimizer_steps``, ``elapsed``), ``select`` (its log column, e.g. ``val_dice``),
        ``stop_reason``, ``run`` (the folder) and ``log`` (one row per epoch).

    Raises:
        NexnetError: a folder, config or dataset the run cannot use, in one line, before any training.
    """
    if not isinstance(run, ResolvedRun):
        run = resolve_config(run, out if resume else None)
    elif resume and (run.resumed_from is None or run.resumed_from.resolve() != Path(out).resolve()):
        raise NexnetError(f"--resume: this run was not resolved to resume {out}; resolve it with "
                          f"resolve_run(..., out={str(out)!r}, resume=True)")  # fmt: skip
    env = D.DistEnv.from_env()
    device = pick_device(run.cfg.train.device, env.local_rank)
    D.init(env, device)
    try:
        result = _train(run, RunFolder(Path(out)), resume, quiet, env, device)
        D.barrier(env)  # rank 0 may still be writing best/ and last/: leave the group together
        return result
    finally:
        D.shutdown(env)


@dataclass
class Run:
    """One training run's moving parts, built once by ``_train`` and used by each epoch."""

    cfg: RunConfig
    folder: RunFolder
    env: D.DistEnv
    device: torch.device
    say: Callable[[str], None]
    model: torch.nn.Module
    data: RunData
    amp: torch.dtype | None
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler
    stepper: Stepper
    loader: BatchLoader
    val_loader: BatchLoader
    state: dict
    rows: list[dict]
    seen: dict
    bars_off: bool = False


def _train(resolved: ResolvedRun, folder: RunFolder, resume: bool, quiet: bool, env: D.DistEnv,
           device: torch.device) -> dict:  # fmt: skip
    cfg, model, tc = resolved.cfg, resolved.model, resolved.cfg.train
    say = (lambda msg: tqdm.write(msg)) if env.main and not quiet else (lambda msg: None)
    folder.refuse_unless_writable(resume, [cfg.data.data_root])  # every check before any decoding
    sched, amp = make_schedule(tc), autocast_dtype(tc.amp, device)
    ssl = tc.ssl_checkpoint if not resume else None
    if ssl:  # a pretraining that read held-out images is refused before anything is decoded or written
        made = discover_and_split(cfg.data)
        check_ssl_ids(ssl, made[1])
    data = _load_data(cfg, folder, resume, env, say, made if ssl else None)
    if ssl:
        check_ssl_pixels(ssl, data)
    model = place_model(model, device)
    if ssl:
        load_ssl_encoder(model, ssl)
    elif cfg.model.get("ssl") and not resume:
        say("warning: model.ssl without train.ssl_checkpoint: the SSL encoder starts from random weights")
    run = _assemble(cfg, folder, env, device, say, model, data, amp, sched, resume, quiet)
    if env.main:  # after a resumed run's state has loaded: a run that cannot resume keeps its files
        folder.write_config(cfg)
        if not (resume and folder.split.exists()):
            data.split.save(folder.split)
    left = _nothing_left(tc, run.state, run.rows)
    stop_reason = left or "epochs done"
    if left is None and (note := warmup_for(tc)[1]):  # here: never before a refusal
        say(note)
    for epoch in range(run.state["epoch"], tc.epochs if left is None else 0):
        seconds = _epoch(run, epoch)
        if run.state["since_best"] >= tc.early_stop:
            stop_reason = f"early stop: {tc.early_stop} epochs without a better {_selected(tc)}"
            break
        if budget_reached(run.state["elapsed"], seconds, budget := tc.max_minutes):
            longer = f" (an epoch takes {seconds / 60:.1f} min, more than the budget)" if seconds > budget * 60 else ""
            stop_reason = f"time budget of {budget:g} min reached{longer}"
            break
    state = run.state
    say(
        f"{stop_reason}; best {_selected(tc)} {state['best_score']:.4f} at epoch {state['best_epoch']}; "
        f"{state['optimizer_steps']} optimizer steps; run folder {folder.path}"
    )
    return {**state, "select": f"val_{tc.select}", "stop_reason": stop_reason, "run": str(folder.path),
            "log": run.rows}  # fmt: skip


def _selected(tc: TrainConfig) -> str:
    """How messages name the selection metric: ``val mDice`` for ``train.select: dice``."""
    return f"val {VALIDATION_METRICS[tc.select]}"


def _nothing_left(tc: TrainConfig, state: dict[str, Any], rows: list[dict]) -> str | None:
    """Why a resumed run has nothing left to train, and what would let it train on; None if it has."""
    if state["since_best"] >= tc.early_stop:  # final: train.early_stop does not change on resume
        return (f"already stopped early ({tc.early_stop} epochs without a better {_selected(tc)}): best/ holds "
                "its model")  # fmt: skip
    if state["epoch"] >= tc.epochs:
        return f"already trained for --epochs {tc.epochs}; resume with a larger --epochs to train on"
    if budget_reached(state["elapsed"], rows[-1]["seconds"] if rows else 0.0, tc.max_minutes):
        return budget_spent(tc.max_minutes, state["elapsed"])
    return None


def _load_data(cfg: RunConfig, folder: RunFolder, resume: bool, env: D.DistEnv, say: Callable[[str], None],
               made: tuple | None = None) -> RunData:  # fmt: skip
    """The run's data (rank 0 decodes first; the others then read the finished cache), checked for
    enough training and validation cases. ``made``: the discovery and split, if already made."""
    split = folder.split if resume else None
    if env.main:
        data = prepare_data(cfg.data, split, made)
    D.barrier(env)
    if not env.main:
        data = prepare_data(cfg.data, split, made)
    for w in data.warnings:
        say(f"warning: {w}")
    for note in data.split.notes:
        say(f"note: split {data.split.name}: {note}")
    if not data.split.test and not resume:
        say(f"note: split {data.split.name} has no test part in {cfg.data.data_root}, so this model can get no "
            "honest test score; a split with one: paper, kfold:5/1 or seeded")  # fmt: skip
    n_train, n_val = len(data.rows("train")), len(data.rows("val"))
    if n_train == 0 or n_val == 0:
        raise NexnetError(f"split {data.split.name}: needs training and validation cases "
                          f"(got {n_train} and {n_val})")  # fmt: skip
    if cfg.train.batch_size * env.world > n_train:
        raise NexnetError(f"batch size {cfg.train.batch_size} x {env.world} process(es) exceeds the "
                          f"{n_train} training cases; lower --batch-size")  # fmt: skip
    return data


def _assemble(cfg: RunConfig, folder: RunFolder, env: D.DistEnv, device: torch.device, say: Callable[[str], None],
              model: torch.nn.Module, data: RunData, amp: torch.dtype | None, sched: Any, resume: bool,
              quiet: bool) -> Run:  # fmt: skip
    """Loss, optimizer, scaler and loaders; the saved state when resuming."""
    tc = cfg.train
    train_rows, val_rows = data.rows("train"), data.rows("val")
    pos_weight = cfg.loss.pos_weight
    if pos_weight == "auto":
        pos_weight = positive_weight(data.arrays.masks[np.sort(train_rows)])
    loss_fn = DiceBCELoss(float(pos_weight), cfg.loss.bce_weight, cfg.loss.dice_weight).to(device)
    optimizer, trainable = build_optimizer(model, tc)
    scaler = make_scaler(amp, device)
    state: dict[str, Any] = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "since_best": 0,
                             "optimizer_steps": 0, "elapsed": 0.0, "pos_weight": float(pos_weight)}  # fmt: skip
    if resume:
        saved = folder.load_last(model, optimizer)
        sched.load_state_dict(saved.pop("scheduler"))
        if scaler_state := saved.pop("scaler", None):  # fp16's loss scale continues where it was
            scaler.load_state_dict(scaler_state)
        state.update(saved)
        if "best_dice" in state:  # a run saved before train.select: it selected on val_dice
            state["best_score"] = state.pop("best_dice")
        say(f"resuming {folder.path} after epoch {state['epoch']}")
    average = WeightAverage(model, tc.ema_decay) if tc.ema_decay is not None else None
    saved_average = state.pop("ema", None)
    if average is not None and resume:
        if saved_average is None:
            raise NexnetError(f"--resume: {folder.path} was trained without train.ema_decay; resume it as it was")
        average.load_state_dict(saved_average)
    rows: list[dict] = state.pop("log", [])  # log.csv is rewritten from the state, so a kill loses no row
    eager = DistributedDataParallel(model) if env.world > 1 else model
    net = eager
    if tc.compile:  # true: the default backend (inductor); a string names another
        net = torch.compile(eager, **({} if tc.compile is True else {"backend": str(tc.compile)}))
    stepper = Stepper(net, eager, loss_fn, optimizer, scaler, trainable, tc.grad_clip, amp, device, env,
                      TPENProbe(model), average)  # fmt: skip
    augment = cfg.augment if cfg.augment.enabled else None
    loader = BatchLoader(data.arrays.images, data.arrays.masks, train_rows, tc.batch_size, device, shuffle=True,
                         augment=augment, seed=tc.seed, drop_last=True, rank=env.rank, world=env.world)  # fmt: skip
    val_loader = BatchLoader(data.arrays.images, data.arrays.masks, val_rows, tc.eval_batch_size, device)
    slow_note = f" ({note})" if (note := slow_autocast_note(amp, device)) else ""
    say(
        f"{cfg.model_name} on {cfg.data.dataset} ({data.split.name}): train {len(train_rows)}, "
        f"val {len(val_rows)}, test {len(data.split.test)} at {cfg.data.image_size}px; {device}, "
        f"{env.world} process(es), {torch.get_num_threads()} threads, {precision_name(amp)}{slow_note}, "
        f"pos_weight {pos_weight:.2f}{', compiled' if tc.compile else ''}"
    )
    return Run(cfg, folder, env, device, say, model, data, amp, loss_fn, optimizer, sched, scaler, stepper, loader,
               val_loader, state, rows, _seen_images(cfg, folder, data, resume),
               bars_off=not env.main or quiet)  # fmt: skip


def _epoch(run: Run, epoch: int) -> float:
    """Train one epoch, validate, write best/, last/ and the log; the epoch's seconds (rank 0's clock)."""
    tc, state, env, device = run.cfg.train, run.state, run.env, run.device
    start = time.time()
    torch.manual_seed(tc.seed * 7919 + epoch)  # dropout: reproducible per epoch, also on resume
    budget = tc.max_minutes
    spent = max(epoch / tc.epochs, state["elapsed"] / (budget * 60) if budget else 0.0)
    lr = run.sched.lr_for(epoch, progress=spent)  # cosine: over the epochs or the time budget
    run.stepper.set_lr(lr)
    run.loader.epoch = epoch
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", leave=False,
               disable=run.bars_off, dynamic_ncols=True)  # fmt: skip
    fit = fit_epoch(run.stepper, bar, state)
    D.sync_buffers(run.model, env)
    judged = run.stepper.average.module if run.stepper.average else run.model  # what best/ will hold
    metrics = D.metrics_from_main(validate(judged, run.val_loader, run.loss_fn, run.amp, device), env, device)
    score = metrics[f"val_{tc.select}"]
    run.sched.step(epoch, score)
    improved = score > state["best_score"]
    seconds = D.from_main(time.time() - start, env, device)  # one clock for the schedule and the budget
    state.update(epoch=epoch + 1, elapsed=state["elapsed"] + seconds)
    state["since_best"] = 0 if improved else state["since_best"] + 1
    if improved:
        state.update(best_score=score, best_epoch=epoch + 1)
    row = {"epoch": epoch + 1, "train_loss": fit.pop("train_loss"), **metrics, "lr": lr,
           "seconds": round(seconds, 2), "skipped_batches": fit["skipped_batches"],
           "optimizer_steps": state["optimizer_steps"], "best": int(improved), **fit}  # fmt: skip
    run.rows.append(row)
    if env.main:
        _save(run, epoch, metrics, improved)
    run.say(_epoch_line(row, tc.epochs, improved))
    return seconds


def _save(run: Run, epoch: int, metrics: dict, improved: bool) -> None:
    """best/, then last/, then the log: a kill between them loses nothing on resume."""
    extra = _best_extra(run.cfg, run.data.split, epoch + 1, metrics)
    average = run.stepper.average
    record = {SPLIT: run.data.split.to_dict(), SEEN: run.seen}  # best/ and last/ alike: both load
    if improved:
        best = average.module if average else run.model
        best.save_pretrained(run.folder.best, extra=extra, json_files=record)
    state = {**run.state, "scheduler": run.sched.state_dict(), "scaler": run.scaler.state_dict(), "log": run.rows}
    if average:
        state["ema"] = average.state_dict()
    run.folder.save_last(run.model, run.optimizer, state, extra, json_files=record)
    run.folder.write_log(run.rows)


def _seen_images(cfg: RunConfig, folder: RunFolder, data: RunData, resume: bool) -> dict[str, list[str]]:
    """Pixel hashes of every image the model has seen: its own train and val parts, the images its
    SSL encoder was pretrained on (as training images), and what earlier stretches of a resumed run
    recorded, so that no evaluation can score any of them."""
    seen = data.seen_images()
    extra: set[str] = set()
    if cfg.train.ssl_checkpoint:
        extra |= ssl_seen_hashes(cfg.train.ssl_checkpoint)
    if resume and (folder.last / SEEN).is_file():
        earlier = json.loads((folder.last / SEEN).read_text())
        extra |= set(earlier.get("train", []))
        seen["val"] = sorted(set(seen["val"]) | set(earlier.get("val", [])))
    seen["train"] = sorted(set(seen["train"]) | extra)
    return seen


def _epoch_line(row: dict, epochs: int, improved: bool) -> str:
    skipped = row["skipped_batches"]
    scores = "  ".join(f"{label} {row[f'val_{name}']:.4f}" for name, label in VALIDATION_METRICS.items())
    return (f"epoch {row['epoch']:>3}/{epochs}  loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"val {scores}  lr {row['lr']:.2e}  {row['seconds']:.0f}s"
            f"{'  *best' if improved else ''}  grad norm {row['grad_norm_median']:.2f} (max "
            f"{row['grad_norm_max']:.2f}, {row['clipped_fraction']:.0%} clipped)"
            f"{f'  skipped {skipped} non-finite batches' if skipped else ''}")  # fmt: skip


def make_scaler(amp: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast; a disabled scaler (an empty state) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=amp == torch.float16)


def _best_extra(cfg: RunConfig, split: Split, epoch: int, metrics: dict) -> dict:
    """``best/config.json``'s record of the run: with ``best/split.json`` it names every case the
    model was trained and selected on, so that evaluation can refuse to score them."""
    return {"image_size": int(cfg.data.image_size), "dataset": cfg.data.dataset, **split.record(),
            "seed": int(cfg.train.seed), "epoch": epoch, **metrics, "selected_on": f"val_{cfg.train.select}",
            "amp": cfg.train.amp}  # fmt: skip
