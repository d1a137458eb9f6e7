"""``nexnet pretrain``: the SSL denoising autoencoder, on training images only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data import DataConfig, build_arrays, discover_and_split, to_model_input
from ..errors import DataError, NexnetError
from ..io import atomic_write_json
from ..models import create_model
from ..models.base import read_config
from ..models.ssl_autoencoder import SSLAutoencoder
from ..outputs import SEEN
from ..plots import image_grid, line_chart, save_png
from ..runtime import pick_device, place_model
from .config import check_count, check_image_size, check_real
from .optim import adam
from .recon_losses import ReconstructionLoss, VGG16Features, psnr, ssim
from .run_config import PretrainConfig
from .run_folder import RunFolder
from .schedule import budget_reached, budget_spent

PRETRAIN_DEFAULTS: dict[str, Any] = PretrainConfig().to_dict()  # the values live in PretrainConfig
LOG = ["epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr", "seconds"]


def training_images(cfg: PretrainConfig, out: Path | None = None,
                    resume: bool = False) -> tuple[np.ndarray, list[str], list[str]]:  # fmt: skip
    """The training-part images of each dataset's split, decoded at ``image_size``; nothing else is read.

    The split is made as ``nexnet train`` makes it (``discover_and_split``, with ``split_seed``), so a
    fine-tuning run with the same split and seed can check that every image read here is in its
    training part. A resumed run reads its saved ``split_<dataset>.json`` instead, as ``train --resume``
    reads ``split.json``: a changed data root cannot move a case between parts."""
    if len(cfg.datasets) != len(cfg.data_roots):
        raise NexnetError(f"{len(cfg.datasets)} datasets but {len(cfg.data_roots)} data roots: "
                          "give one --data-root per --dataset, comma-separated")  # fmt: skip
    images, ids, hashes = [], [], []
    for name, root in zip(cfg.datasets, cfg.data_roots):
        data = DataConfig(name, root, cfg.split, cfg.split_seed, cfg.image_size, skip_bad=True, workers=cfg.workers)
        saved = out / f"split_{name}.json" if out is not None else None
        found, split = _split_of(data, saved if resume and saved is not None and saved.is_file() else None)
        if saved is not None and not (resume and saved.is_file()):
            split.save(saved)
        train = set(split.train)
        pairs = [p for p in found.pairs if p.id in train]  # never the val or test pairs
        arrays = build_arrays(pairs, cfg.image_size, cfg.workers, skip_bad=True)
        images.append(np.asarray(arrays.images))
        ids += [f"{name}/{i}" for i in arrays.ids]
        hashes += [arrays.facts[i].pixel_hash for i in arrays.ids]
    return np.concatenate(images), ids, sorted(set(hashes))


def _split_of(data: DataConfig, saved: Path | None) -> tuple[Any, Any]:
    """The pairs and split of one dataset: made from its name and seed, or the ``saved`` one."""
    try:
        found, split, _ = discover_and_split(data, saved)
    except DataError as e:
        if saved is None:
            raise
        raise NexnetError(f"--resume: {e}; point --data-root at the data this run was pretrained on, or "
                          "pretrain afresh into a new --out") from None  # fmt: skip
    return found, split


def check_pretrain_numbers(cfg: PretrainConfig) -> None:
    """One line naming the option and a valid value for the first bad number."""
    check_image_size(cfg.image_size, SSLAutoencoder.size_multiple, "ssl_autoencoder", "--image-size")
    flag = lambda key: f"--{key.replace('_', '-')}"  # noqa: E731
    for key, least in (("epochs", 1), ("batch_size", 1), ("workers", 1), ("seed", 0), ("split_seed", 0)):
        check_count(getattr(cfg, key), flag(key), least, PRETRAIN_DEFAULTS[key], nullable=key == "workers")
    check_real(cfg.lr, "--lr", PRETRAIN_DEFAULTS["lr"])
    check_real(cfg.noise, "--noise", PRETRAIN_DEFAULTS["noise"], zero=True)
    check_real(cfg.max_minutes, "--max-minutes", None, nullable=True)


def _noisy(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=gen).to(x.device) * sigma
    return (x + noise).clamp(0, 1)


def _batches(images: np.ndarray, rows: np.ndarray, size: int, device: torch.device, drop_last: bool = False):  # noqa: ANN202
    stop = len(rows) - len(rows) % size if drop_last and len(rows) >= size else len(rows)
    for i in range(0, stop, size):
        idx = np.sort(rows[i : i + size])
        yield to_model_input(images[idx], device)


def _check_out(cfg: PretrainConfig, folder: RunFolder, resume: bool) -> None:
    """Data roots made absolute (``--resume`` from anywhere); an ``--out`` that holds a run (without
    ``--resume``), lies inside a data root or holds foreign files refused."""
    cfg.data_roots = [str(Path(root).resolve()) for root in cfg.data_roots]
    folder.refuse_unless_writable(resume, cfg.data_roots, ours_prefix=("split_",))


def _fit_epoch(model: torch.nn.Module, bar: tqdm, loss_fn: torch.nn.Module, opt: torch.optim.Optimizer,
               noise: float, gen: torch.Generator) -> float:  # fmt: skip
    """One pass of denoising over the training batches (each flipped at random); the mean loss."""
    total, seen = 0.0, 0
    for clean in bar:
        if torch.rand(1, generator=gen).item() < 0.5:
            clean = clean.flip(3)
        loss = loss_fn(model(_noisy(clean, noise, gen)), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, seen = total + loss.item() * len(clean), seen + len(clean)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    return total / max(seen, 1)


@torch.no_grad()
def _validate(model, images, rows, loss_fn, noise, device, batch) -> dict[str, float]:  # noqa: ANN001
    model.eval()
    gen = torch.Generator().manual_seed(12345)  # the same noise every epoch
    losses, ps, ss = [], [], []
    for clean in _batches(images, rows, batch, device):
        recon = model(_noisy(clean, noise, gen))
        losses.append(loss_fn(recon, clean).item() * len(clean))
        ps += psnr(recon, clean).tolist()
        ss += ssim(recon, clean).tolist()
    n = max(len(ps), 1)
    return {"val_loss": sum(losses) / n, "val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss))}


def pretrain(cfg: PretrainConfig | dict, out: str | Path, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Pretrain the SSL autoencoder as ``cfg`` (a ``PretrainConfig`` or its dict) says, into the run folder ``out``."""
    folder = RunFolder(Path(out))
    cfg = PretrainConfig.from_dict(cfg)
    check_pretrain_numbers(cfg)  # before any decoding
    _check_out(cfg, folder, resume)
    say = (lambda m: None) if quiet else tqdm.write
    device = pick_device(cfg.device)
    folder.write_config(cfg)
    images, ids, pixel_hashes = training_images(cfg, folder.path, resume)
    perm = np.random.default_rng(cfg.seed).permutation(len(ids))
    n_hold = max(1, round(cfg.holdout * len(ids)))
    val_rows, train_rows = np.sort(perm[:n_hold]), perm[n_hold:]
    atomic_write_json(folder.path / "images.json", {"train": [ids[i] for i in sorted(train_rows)],
                                                    "holdout": [ids[i] for i in val_rows]})  # fmt: skip
    torch.manual_seed(cfg.seed)
    model = place_model(create_model("ssl_autoencoder"), device)
    vgg = VGG16Features.from_file(cfg.vgg_weights).to(device) if cfg.vgg_weights else None
    opt = adam(list(model.parameters()), lr=cfg.lr)
    state: dict[str, Any] = {"epoch": 0, "best_loss": float("inf"), "elapsed": 0.0, "log": []}
    if resume:
        state.update(folder.load_last(model, opt))
    say(
        f"pretraining ssl_autoencoder on {len(train_rows)} training images of {', '.join(cfg.datasets)} "
        f"({len(val_rows)} held out for PSNR/SSIM) at {cfg.image_size}px; noise sigma {cfg.noise}; "
        f"perceptual term {'on' if vgg is not None else 'off (no --vgg-weights): 0.78 MSE + 0.22 (1-SSIM)'}"
    )
    read, pixel_hashes = _with_earlier_stretches(folder, ids, pixel_hashes, resume)
    best_extra = {"image_size": cfg.image_size, "images_read": read}
    seen = {SEEN: {"train": pixel_hashes, "val": []}}
    data = (images, train_rows, val_rows, device)
    _epochs(cfg, folder, model, opt, ReconstructionLoss(vgg), data, state, best_extra, seen, say, quiet)
    return {k: v for k, v in state.items() if k != "log"} | {"last": state["log"][-1] if state["log"] else {}}


def _epochs(cfg: PretrainConfig, folder: RunFolder, model: torch.nn.Module, opt: torch.optim.Optimizer,
            loss_fn: torch.nn.Module, data: tuple, state: dict[str, Any], best_extra: dict, seen: dict,
            say: Callable[[str], None], quiet: bool) -> None:  # fmt: skip
    """The epochs left: fit, validate on the held-out images, then best/, last/, the log and the plots."""
    images, train_rows, val_rows, device = data
    last = state["log"][-1]["seconds"] if state["log"] else 0.0
    if state["epoch"] < cfg.epochs and budget_reached(state["elapsed"], last, cfg.max_minutes):
        say(budget_spent(cfg.max_minutes, state["elapsed"]))
        return
    for epoch in range(state["epoch"], cfg.epochs):
        start = time.time()
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        order = train_rows[np.random.default_rng(cfg.seed + epoch).permutation(len(train_rows))]
        bar = tqdm(_batches(images, order, cfg.batch_size, device, drop_last=True), leave=False,
                   total=max(1, len(order) // cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=quiet, unit="batch")  # fmt: skip
        train_loss = _fit_epoch(model, bar, loss_fn, opt, cfg.noise, gen)
        metrics = _validate(model, images, val_rows, loss_fn, cfg.noise, device, cfg.batch_size)
        seconds = time.time() - start
        row = {"epoch": epoch + 1, "train_loss": train_loss, **metrics, "lr": cfg.lr,
               "seconds": round(seconds, 2)}  # fmt: skip
        state["log"].append(row)
        state.update(epoch=epoch + 1, elapsed=state["elapsed"] + seconds)
        if metrics["val_loss"] < state["best_loss"]:
            state["best_loss"] = metrics["val_loss"]
            model.save_pretrained(folder.best, extra={**best_extra, "epoch": epoch + 1, **metrics}, json_files=seen)
        folder.save_last(model, opt, state)
        folder.write_log(state["log"], LOG, curves=False)  # its own curves: below
        _plots(folder.path, model, images, val_rows, cfg, state["log"], device)
        say(f"epoch {epoch + 1:>3}/{cfg.epochs}  loss {row['train_loss']:.4f}  val loss {metrics['val_loss']:.4f}"
            f"  PSNR {metrics['val_psnr']:.2f} dB  SSIM {metrics['val_ssim']:.4f}  {seconds:.0f}s")  # fmt: skip
        if budget_reached(state["elapsed"], seconds, cfg.max_minutes):
            say(f"time budget of {cfg.max_minutes:g} min reached")
            break


@torch.no_grad()
def _plots(out: Path, model, images, rows, cfg, log, device) -> None:  # noqa: ANN001
    x = [int(r["epoch"]) for r in log]
    line_chart(out / "curves.png", x, [
        ("loss", {"train": [r["train_loss"] for r in log], "held out": [r["val_loss"] for r in log]}),
        ("held-out PSNR (dB)", {"PSNR": [r["val_psnr"] for r in log]}),
        ("held-out SSIM", {"SSIM": [r["val_ssim"] for r in log]}),
    ], x_label="epoch")  # fmt: skip
    model.eval()
    clean = next(_batches(images, rows[:6], 6, device))
    noisy = _noisy(clean, cfg.noise, torch.Generator().manual_seed(12345))
    recon = model(noisy)
    to_np = lambda t: [(im.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.uint8) for im in t]  # noqa: E731
    tiles = to_np(noisy) + to_np(recon) + to_np(clean)
    caps = ["noisy"] * len(clean) + ["reconstructed"] * len(clean) + ["clean"] * len(clean)
    save_png(out / "recon.png", image_grid(tiles, cols=len(clean), cell=160, captions=caps))


def _with_earlier_stretches(folder: RunFolder, ids: list[str], hashes: list[str],
                            resume: bool) -> tuple[dict[str, list[str]], list[str]]:  # fmt: skip
    """The images read (per dataset) and their pixel hashes, joined on resume with what the run's
    earlier stretches recorded in ``best/``: a checkpoint names every image that shaped it."""
    read = _images_read(ids)
    if not (resume and (folder.best / SEEN).is_file()):
        return read, hashes
    for dataset, cases in read_config(folder.best).get("images_read", {}).items():
        read[dataset] = sorted(set(read.get(dataset, [])) | set(cases))
    earlier = json.loads((folder.best / SEEN).read_text()).get("train", [])
    return read, sorted(set(hashes) | set(earlier))


def _images_read(ids: list[str]) -> dict[str, list[str]]:
    """``["kvasir/a", "kvasir/b"]`` -> ``{"kvasir": ["a", "b"]}``: every image pretraining read."""
    out: dict[str, list[str]] = {}
    for i in ids:
        dataset, case = i.split("/", 1)
        out.setdefault(dataset, []).append(case)
    return {k: sorted(v) for k, v in out.items()}
