"""``nexnet reproduce``: the paper's Tables 1, 2 and 4 as resumable grids of runs."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data import get_adapter
from ..errors import DataError, NexnetError
from ..evaluation import evaluate
from ..io import atomic_write_json, atomic_write_text
from ..models import create_model
from ..models.base import read_config
from ..outputs import PRETRAIN_DONE, RUN_CONFIG, SUMMARY, TRAIN_DONE
from ..plots import bar_chart, scatter_chart
from ..profile import count_parameters, format_markdown, profile_model
from ..training import PRETRAIN_DEFAULTS, RunConfig, RunFolder, paper_recipe, parse_set, pretrain, resolve, train
from ..training.resolution import finish

DATASETS = ["isic2016", "isic2017", "isic2018", "ph2", "kvasir", "cvc_clinicdb"]
MODELS = {"unet": "UNet", "unetpp": "UNet++", "transunet": "TransUNet", "segformer_b2": "SegFormer",
          "nexnet_seg": "NExNet Seg"}  # fmt: skip
PAPER_DICE = {  # Table 1 as reported (the authors' protocol); never our result
    "unet": [0.887, 0.794, 0.813, 0.873, 0.775, 0.856],
    "unetpp": [0.889, 0.814, 0.833, 0.890, 0.786, 0.874],
    "transunet": [0.913, 0.873, 0.904, 0.910, 0.889, 0.920],
    "segformer_b2": [None, 0.851, 0.869, None, 0.905, 0.931],
    "nexnet_seg": [0.913, 0.921, 0.918, 0.936, 0.943, 0.934],
}
PAPER_TABLE4 = {"unet": (31.1, 0.09, 68), "transunet": (105, 0.30, 160), "nexnet_seg": (30.4, 0.06, 18)}
ABLATIONS = {  # name: (tpen, masa, ssl, mean Dice read off the authors' README figure, dataset unnamed)
    "baseline": (False, False, False, 0.71), "no_ssl_no_masa": (True, False, False, 0.80),
    "no_ssl": (True, True, False, 0.78), "no_masa": (True, False, True, 0.84), "full": (True, True, True, 0.86),
}  # fmt: skip
QUICK = {"data.image_size": 64, "train.epochs": 8, "train.batch_size": 16, "train.lr": 1e-3,
         "train.warmup_epochs": 1, "train.early_stop": 100, "train.eval_batch_size": 32}  # fmt: skip
QUICK_PRETRAIN = {"image_size": 64, "epochs": 3, "batch_size": 16}


def run_config(model: str, dataset: str, folder: Path, quick: bool, device: str, extra: list[str] | None = None,
               paper_exact: bool = False, variant: list[str] | None = None) -> RunConfig:  # fmt: skip
    """One cell's config: defaults, the paper's recipe (``paper_exact``), then --quick's settings
    (a CPU-sized run wins over either recipe), the ``variant``'s keys, and the user's ``--set`` last."""
    cfg = resolve(None, [f"train.device={device}"], model__name=model, data__dataset=dataset,
                  data__data_root=str(folder))  # fmt: skip
    if paper_exact:
        cfg = cfg.merged(paper_recipe(model))
    quick_sets = [f"{k}={v}" for k, v in QUICK.items()] if quick else []
    return cfg.merged(parse_set([*quick_sets, *(variant or []), *(extra or [])]))


def table_name(table: int, paper_exact: bool) -> str:
    """``table1``, or ``table1_paper_exact``: the two recipes never share cells or files."""
    return f"table{table}" + ("_paper_exact" if paper_exact else "")


def available(datasets: list[str], root: Path, say: Callable[[str], None]) -> list[tuple[str, Path]]:
    """The datasets found under ``root``; the others are skipped with a line each."""
    found = []
    for name in datasets:
        try:
            folder = get_adapter(name).locate(root)
        except DataError as e:
            say(f"skipping {name}: {str(e).split(';')[0]}")
            continue
        found.append((name, folder))
    if not found:
        raise NexnetError(f"{root}: none of {', '.join(datasets)} found; 'nexnet datasets' lists the folder names")
    return found


def run_cell(run: Path, cfg: RunConfig, dataset: str, folder: Path, say: Callable[[str], None]) -> dict | None:
    """Train (or resume, or skip when finished) one run, then evaluate it on the test split."""
    summary_file = run / "eval" / SUMMARY
    if summary_file.is_file():
        form = RunFolder(run).read_config().get("model", {}).get("form") if (run / RUN_CONFIG).is_file() else None
        say(f"{run}: finished earlier, skipped" + (f" (NExNet Seg form {form})" if form else ""))
        return json.loads(summary_file.read_text())
    if not (run / TRAIN_DONE).is_file():
        resume = (run / "last" / "state.json").is_file()
        say(f"{run}: {'resuming' if resume else 'training'}")
        if resume and (run / RUN_CONFIG).is_file():  # continue the run as it started, not as today's defaults say
            cfg = RunFolder(run).read_run_config().merged({"train": {"device": cfg.train.device}})
        try:  # a resumed run's own config as it is (read once); a new one resolved by train
            resumed = finish(cfg, resumed_from=run) if resume else cfg
            result = train(resumed, run, resume=resume)  # its epoch lines are the grid's progress
        except (NexnetError, ValueError) as e:
            say(f"{run}: skipped ({e})")
            return None
        atomic_write_json(run / TRAIN_DONE, {k: v for k, v in result.items() if k != "log"})
    try:
        return evaluate(run / "best", dataset, folder, subset="test", protocol="paper", out=run / "eval",
                        say=lambda _: None, batch_size=int(cfg.train.batch_size))  # fmt: skip
    except NexnetError as e:
        say(f"{run}: not evaluated ({e})")
        return None


def table1(root: Path, out: Path, datasets: list[str], models: list[str], quick: bool, device: str,
           say: Callable[[str], None], extra: list[str] | None = None,
           paper_exact: bool = False) -> list[dict]:  # fmt: skip
    rows = []
    for dataset, folder in available(datasets, root, say):
        for model in models:
            cfg = run_config(model, dataset, folder, quick, device, extra, paper_exact)
            cell = out / table_name(1, paper_exact) / dataset / model
            s = run_cell(cell, cfg, dataset, folder, say)
            reported = (
                PAPER_DICE[model][DATASETS.index(dataset)] if model in PAPER_DICE and dataset in DATASETS else None
            )
            rows.append(_row(dataset, model, s, cfg, reported, cell))
    _write(out / table_name(1, paper_exact), rows)
    points = [(r["params_m"], r["ours_mdice"], MODELS.get(r["model"], r["model"]), r["dataset"])
              for r in rows if r["ours_mdice"] is not None]  # fmt: skip
    if points:
        figure = out / f"{table_name(1, paper_exact)}_params_vs_dice.png"
        scatter_chart(figure, points, "parameters (M)", "mean Dice (ours, honest)")
    return rows


def table2(root: Path, out: Path, datasets: list[str], quick: bool, device: str,
           say: Callable[[str], None], extra: list[str] | None = None,
           paper_exact: bool = False) -> list[dict]:  # fmt: skip
    dataset, folder = available(datasets, root, say)[0]
    base = out / table_name(2, paper_exact) / dataset
    pre = base / "pretrain"
    if (pre / "best").is_dir() and "images_read" not in read_config(pre / "best"):
        aside = pre.with_name(f"pretrain.unchecked-{int(time.time())}")
        pre.rename(aside)  # from before pretraining recorded its images: fine-tuning would refuse it
        say(f"{pre}: records no list of the images it read; moved to {aside.name}, pretraining again")
    if not (pre / "best").is_dir() or not (pre / PRETRAIN_DONE).is_file():
        data = run_config("nexnet_seg", dataset, folder, quick, device, extra, paper_exact).data
        cfg = {**PRETRAIN_DEFAULTS, "datasets": [dataset], "data_roots": [str(folder)], "device": device,
               "split": data.split, "split_seed": data.seed,  # the fine-tuning runs' training part
               **(QUICK_PRETRAIN if quick else {})}  # fmt: skip
        say(f"{pre}: pretraining the SSL autoencoder")
        pretrain(cfg, pre, resume=(pre / "last" / "state.json").is_file(), quiet=True)
        atomic_write_json(pre / PRETRAIN_DONE, {"done": True})
    rows = []
    for name, (tpen, masa, ssl, reported) in ABLATIONS.items():
        variant = [f"model.tpen={tpen}", f"model.masa={masa}", f"model.ssl={ssl}"]
        if ssl:
            variant.append(f"train.ssl_checkpoint={pre}")
        cfg = run_config("nexnet_seg", dataset, folder, quick, device, extra, paper_exact, variant)
        s = run_cell(base / name, cfg, dataset, folder, say)
        rows.append({**_row(dataset, "nexnet_seg", s, cfg, reported, base / name), "variant": name})
    _write(out / table_name(2, paper_exact), rows, first=["variant"])
    names = [r["variant"] for r in rows]
    bar_chart(out / f"{table_name(2, paper_exact)}_ablation.png", names, {
        "ours (honest mDice)": [r["ours_mdice"] for r in rows],
        "ours (authors' protocol)": [r["authors_protocol_dice"] for r in rows],
        "reported (README figure)": [r["reported_dice"] for r in rows],
    }, "Dice")  # fmt: skip
    return rows


def _profiled_forms(name: str) -> list[tuple[str, dict]]:
    """NExNet Seg models in their default form and in the paper's (the one the paper's figures are
    for); other models as they are."""
    if name.startswith("nexnet_seg"):
        return [(name, {}), (f"{name} (paper form)", {"form": "paper"})]
    return [(name, {})]


def table4(out: Path, models: list[str], quick: bool, device: str, say: Callable[[str], None]) -> list[dict]:
    rows = []
    for name, label, keywords in ((n, label, kw) for n in models for label, kw in _profiled_forms(n)):
        say(f"profiling {label}")
        r = profile_model(create_model(name, **keywords), 224, 1, device, repeats=3 if quick else 10,
                          throughput_batch=4 if quick else 16)  # fmt: skip
        r["model"] = label
        paper_network = not name.startswith("nexnet_seg") or keywords.get("form") == "paper"
        reported = PAPER_TABLE4.get(name) if paper_network else None
        r.update(
            reported_params_m=reported[0] if reported else None,
            reported_seconds=reported[1] if reported else None,
            reported_gflops=reported[2] if reported else None,
        )
        rows.append(r)
    atomic_write_json(out / "table4.json", rows)
    md = (
        format_markdown(rows)
        + "\n\nReported by the paper (its Table 4; GPU not named): "
        + "; ".join(f"{MODELS.get(k, k)} {p}M params, {s} s, {g} GFLOPs" for k, (p, s, g) in PAPER_TABLE4.items())
        + ".\n"
    )
    atomic_write_text(out / "table4.md", md)
    _csv(out / "table4.csv", rows)
    return rows


def _row(dataset: str, model: str, s: dict | None, cfg: RunConfig, reported: float | None,
         run: Path) -> dict[str, Any]:  # fmt: skip
    """One table row; a cell that ran (perhaps under other defaults) is described by its own config."""
    if (run / RUN_CONFIG).is_file():
        cfg = RunFolder(run).read_run_config()
    params = count_parameters(create_model(model, **cfg.model_kwargs()))
    return {
        "dataset": dataset, "model": model, "form": cfg.model.get("form", "-"), "params_m": round(params / 1e6, 2),
        "ours_mdice": s["mean"]["dice"] if s else None, "ours_mdice_ci95": s["mean_dice_ci95"] if s else None,
        "ours_miou": s["mean"]["iou"] if s else None, "pooled_dice": s["pixel_pooled"]["dice"] if s else None,
        "authors_protocol_dice": s["authors_protocol"]["dice"] if s else None, "reported_dice": reported,
        "test_cases": s["cases"] if s else 0, "image_size": cfg.data.image_size,
        "epochs": cfg.train.epochs,
    }  # fmt: skip


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return "-".join(f"{x:.3f}" for x in v)
    return str(v)


def _csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)
    atomic_write_text(path, buf.getvalue())


def _write(stem: Path, rows: list[dict], first: list[str] | None = None) -> None:
    cols = [*(first or []), "dataset", "model", "form", "params_m", "ours_mdice", "ours_mdice_ci95", "ours_miou",
            "pooled_dice", "authors_protocol_dice", "reported_dice", "test_cases", "image_size", "epochs"]  # fmt: skip
    head = ["ours: honest mDice (test, threshold 0.5, original size)" if c == "ours_mdice" else c for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    note = ("\n`authors_protocol_dice`: the authors' protocol on the same predictions (pixels pooled per batch, "
            "threshold picked on the test labels). `reported_dice`: the paper's figure, as reported, not measured "
            "here.\n")  # fmt: skip
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n" + note)
    _csv(stem.with_suffix(".csv"), [{c: r.get(c) for c in cols} for r in rows])
