"""``nexnet frontier``: each model family's accuracy against training time, as a resumable grid.

Every (model, width, image size, budget, seed) is its own ``nexnet train`` run with ``--max-minutes`` set to the
budget (the cosine schedule spans it, after a one-epoch warm-up), then ``nexnet evaluate`` on the
test split at threshold 0.5. Runs are subprocesses, ``jobs`` at a time with ``threads`` torch
threads each, so that every run shares the machine the same way. A finished run leaves
``points/ID.json`` (its numbers and per-image test Dice) and is skipped from then on, so a long
frontier is built across sittings and its points can be kept without the checkpoints; ``logs/``
holds each run's commands and output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import NexnetError
from ..io import atomic_write_json, restore_interrupted
from ..models import create_model
from ..models.registry import list_models, model_keywords
from ..outputs import FRONTIER_RECORD, SPLIT, SUMMARY
from ..profile import count_flops, count_parameters
from ..runtime import machine
from ..training import RunFolder
from . import frontier_report as report
from .frontier_report import width_label

# The protocol's fixed settings: time, not epochs, ends every run; the warm-up fits the shortest.
RUN_SETTINGS = ["train.epochs=100000", "train.early_stop=100000", "train.warmup_epochs=1"]


@dataclass(frozen=True)
class Point:
    """One run of the grid: a model family at a width factor and an image size, a budget in minutes,
    a training seed."""

    model: str
    width: Fraction
    size: int
    budget: float
    seed: int

    @property
    def name(self) -> str:
        width = width_label(self.width).replace("/", "_")
        return f"{self.model}-w{width}-{self.size}px-{self.budget:g}min-seed{self.seed}"


@dataclass
class Progress:
    """What a frontier has so far: finished points by name (every record in ``points/`` of its
    models, also those of settings another command added), settings whose seeds were skipped, and
    (with ``report_only``) the runs it would still train."""

    points: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)


@dataclass
class FrontierPlan:
    """What ``nexnet frontier`` was asked; ``sets`` are ``--set`` overrides for every run."""

    dataset: str
    data_root: str
    out: Path
    models: list[str]
    widths: list[Fraction]
    budgets: list[float]
    seeds: int = 2
    image_sizes: list[int] = field(default_factory=lambda: [128])
    batch_size: int = 16
    split: str | None = None
    split_seed: int = 0
    jobs: int = 1
    threads: int | None = None
    skip_below: float | None = 0.03
    extend_best: float | None = None
    device: str = "auto"
    sets: list[str] = field(default_factory=list)
    report_only: bool = False

    @property
    def settings(self) -> list[tuple[Fraction, int]]:
        """(width, image size) pairs, in the order the runs take them: width by width."""
        return [(w, size) for w in self.widths for size in self.image_sizes]

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def points(self) -> Path:
        return self.out / "points"


def parse_width(text: str) -> Fraction:
    """``1/8``, ``0.25`` or ``1``: a width factor of the model's standard widths."""
    try:
        value = Fraction(text.strip()).limit_denominator(64)
    except (ValueError, ZeroDivisionError):
        value = Fraction(0)
    if value <= 0:
        raise NexnetError(f"--widths {text!r}: give width factors of the standard widths, e.g. 1/8,1/4,1/2")
    return value


def width_keywords(model: str, width: Fraction) -> dict[str, Any]:
    """The model keywords that scale ``model``'s standard widths by ``width`` (``widths`` or
    ``base_width``, as its default config names them)."""
    if model not in list_models():
        try:
            create_model(model)
        except NexnetError as e:
            raise NexnetError(f"--models: {e}") from None
    keywords = model_keywords(model)
    if "widths" not in keywords and "base_width" not in keywords:
        raise NexnetError(f"--models {model}: it has no width setting (widths or base_width); leave it out")
    config = create_model(model).config
    if "widths" in config:
        scaled = [int(w * width) for w in config["widths"]]
        key: str = "widths"
        value: Any = scaled
        exact = all(w * width == s for w, s in zip(config["widths"], scaled))
    else:
        value, key = int(config["base_width"] * width), "base_width"
        exact = config["base_width"] * width == value
    if not exact or min(value if isinstance(value, list) else [value]) < 1:
        raise NexnetError(f"--widths {width_label(width)}: {model}'s widths {config[key]} do not scale to whole "
                          "channels by it; choose a factor such as 1/2, 1/4 or 1/8")  # fmt: skip
    return {key: value}


def train_command(plan: FrontierPlan, point: Point) -> list[str]:
    """The ``nexnet train`` command line of one run (resumed when its folder holds one)."""
    run = plan.runs / point.name
    restore_interrupted(run / "last")  # a kill between the two renames of a save
    if (run / "last" / "state.json").is_file():
        return [sys.executable, "-m", "nexnet", "train", "--out", str(run), "--resume", "--quiet",
                *(["--threads", str(plan.threads)] if plan.threads else [])]  # fmt: skip
    ((key, value),) = width_keywords(point.model, point.width).items()
    shown = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
    sets = [*RUN_SETTINGS, f"model.{key}={shown}", *plan.sets]
    return [
        sys.executable, "-m", "nexnet", "train", "--model", point.model, "--dataset", plan.dataset,
        "--data-root", plan.data_root, *(["--split", plan.split] if plan.split else []),
        "--split-seed", str(plan.split_seed), "--image-size", str(point.size),
        "--batch-size", str(plan.batch_size), "--max-minutes", f"{point.budget:g}", "--seed", str(point.seed),
        "--device", plan.device, *(a for s in sets for a in ("--set", s)),
        *(["--threads", str(plan.threads)] if plan.threads else []), "--quiet", "--out", str(run),
    ]  # fmt: skip


def evaluate_command(plan: FrontierPlan, point: Point) -> list[str]:
    run = plan.runs / point.name
    return [sys.executable, "-m", "nexnet", "evaluate", "--checkpoint", str(run / "best"), "--dataset", plan.dataset,
            "--data-root", plan.data_root, "--device", plan.device, "--out", str(run / "eval")]  # fmt: skip


def run_point(plan: FrontierPlan, point: Point) -> dict[str, Any]:
    """Train and evaluate one point (or take its earlier record); writes ``points/NAME.json``."""
    record = plan.points / f"{point.name}.json"
    if record.is_file():
        return json.loads(record.read_text())
    logs = plan.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEXNET_QUIET": "1"}
    if plan.threads:
        env["OMP_NUM_THREADS"] = str(plan.threads)
    for step, command in (("train", train_command(plan, point)), ("evaluate", evaluate_command(plan, point))):
        log_file = logs / f"{point.name}.{step}.log"
        with open(log_file, "a") as log:
            log.write(" ".join(command) + "\n")
            log.flush()
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if done.returncode:
            tail = log_file.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise NexnetError(f"{point.name}: {step} failed ({tail[0]}); see {log_file}")
    result = {**describe(plan, point), **read_run(plan.runs / point.name)}
    atomic_write_json(record, result)
    return result


def describe(plan: FrontierPlan, point: Point) -> dict[str, Any]:
    """A point's settings and cost: parameters and MACs per image at its size, of the model as its
    run built it (``--set model.*`` included)."""
    import torch

    cfg = RunFolder(plan.runs / point.name).read_run_config()
    model = create_model(cfg.model_name, **cfg.model_kwargs())
    macs = count_flops(model.eval(), torch.zeros(1, 3, point.size, point.size)) / 2
    return {"name": point.name, "model": point.model, "width": width_label(point.width),
            "width_factor": float(point.width), "budget_min": point.budget, "seed": point.seed,
            "image_size": point.size, "batch_size": plan.batch_size, "threads": plan.threads,
            "params": count_parameters(model), "gmacs": macs / 1e9, "machine": machine()}  # fmt: skip


def read_run(run: Path) -> dict[str, Any]:
    """What a finished run and its evaluation say: epochs, steps, time, validation and test scores."""
    import csv

    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    split = json.loads((run / SPLIT).read_text())
    summary = json.loads((run / "eval" / SUMMARY).read_text())
    seconds = sum(float(r["seconds"]) for r in rows)
    train_images = len(split.get("train", []))
    return {
        "epochs": len(rows), "optimizer_steps": int(rows[-1]["optimizer_steps"]) if rows else 0,
        "train_seconds": round(seconds, 1),
        "images_per_s": round(train_images * len(rows) / seconds, 2) if seconds else None,
        "best_val_mdice": max(float(r["val_dice"]) for r in rows), "val_cases": len(split.get("val", [])),
        "test_mdice": summary["mean"]["dice"], "test_ci95": summary["mean_dice_ci95"],
        "test_dice": {c["id"]: c["dice"] for c in summary["per_case"]},
    }  # fmt: skip


PROTOCOL = ("dataset", "split", "split_seed", "batch_size", "jobs", "threads", "device", "sets")
FLAGS = {"sets": "--set", "split_seed": "--split-seed", "batch_size": "--batch-size"}
FLAG_EXAMPLES = {"--models": "nexnet_seg,unet", "--widths": "1/8,1/4,1/2", "--budgets": "10,30", "--image-size": "128"}


def check_plan(plan: FrontierPlan) -> None:
    """Every refusal before any training: models and widths that do not build, image sizes they do
    not take, an ``extend_best`` no longer than the budgets, and a rerun whose protocol differs from
    the one its points were made under (``plan.json``)."""
    for flag, given in (("--models", plan.models), ("--widths", plan.widths), ("--budgets", plan.budgets),
                        ("--image-size", plan.image_sizes)):  # fmt: skip
        if not given:
            raise NexnetError(f"{flag}: give at least one, e.g. {flag} " + FLAG_EXAMPLES[flag])
    for model in plan.models:
        for width in plan.widths:
            create_model(model, **width_keywords(model, width))
        multiple = getattr(create_model(model), "size_multiple", 32)
        for size in (s for s in plan.image_sizes if s % multiple):
            raise NexnetError(f"--image-size {size}: {model} takes multiples of {multiple} px, e.g. "
                              f"{max(multiple, size // multiple * multiple)}")  # fmt: skip
    if plan.extend_best is not None and plan.extend_best <= max(plan.budgets):
        raise NexnetError(f"--extend-best {plan.extend_best:g}: give minutes beyond the largest budget "
                          f"({max(plan.budgets):g}), e.g. --extend-best {2 * max(plan.budgets):g}")  # fmt: skip
    saved_file = plan.out / "plan.json"
    if saved_file.is_file():
        saved, now = json.loads(saved_file.read_text()), _settings(plan)
        for key in (k for k in PROTOCOL if k in saved and saved[k] != now[k]):
            flag = FLAGS.get(key, f"--{key.replace('_', '-')}")
            raise NexnetError(f"{plan.out}: its points were made with {flag} {saved[key]!r}, not {now[key]!r}; "
                              f"pass the same {flag}, or choose another --out")  # fmt: skip


def run_frontier(plan: FrontierPlan, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the grid in phases (every setting's first seed, then the other seeds of the settings that
    validate within ``skip_below`` of their family's best), then ``extend_best``; write the report.
    With ``plan.report_only``, train nothing: report the finished points and list the missing ones."""
    check_plan(plan)
    if plan.threads:  # the parent's own work (MAC counts) shares the machine like every run
        import torch

        torch.set_num_threads(plan.threads)
    if plan.report_only and not any(plan.points.glob("*.json")):
        raise NexnetError(f"--report-only: {plan.out} holds no finished runs yet; run without --report-only first")
    plan.points.mkdir(parents=True, exist_ok=True)
    if not plan.report_only:  # protocol checked above: the same, with today's grid
        atomic_write_json(plan.out / "plan.json", _settings(plan))
    done, settings = Progress(skipped=_earlier_skips(plan)), plan.settings
    for f in sorted(plan.points.glob("*.json")):
        if (record := json.loads(f.read_text())).get("model") in plan.models:
            done.points[f.stem] = record
    for budget in plan.budgets:  # the families side by side at each setting, in the order --widths gives
        missing = len(done.missing)
        _run_all(plan, [Point(m, w, size, budget, 0) for w, size in settings for m in plan.models], say, done)
        final = len(done.missing) == missing  # with first seeds still to train, no setting is skipped yet
        rest, left_out = report.seeds_to_run(list(done.points.values()), budget, plan.models, settings, plan.seeds,
                                             plan.skip_below if final else None)  # fmt: skip
        rest.sort(key=lambda r: (r[2], settings.index(r[1]), plan.models.index(r[0])))
        todo = [Point(m, *st, budget, s) for m, st, s in rest]
        todo += _partners(plan, todo, left_out, done)
        done.skipped += left_out
        _run_all(plan, todo, say, done)
    if plan.extend_best:
        chosen = report.choose(list(done.points.values()), max(plan.budgets), plan.models)
        _run_all(plan, [Point(m, *st, plan.extend_best, s) for s in range(plan.seeds) for m, st in chosen.items()],
                 say, done)  # fmt: skip
    return report.write_report(plan.out, list(done.points.values()), done.skipped, _settings(plan), done.missing)


def _partners(plan: FrontierPlan, todo: list[Point], left_out: list[dict], done: Progress) -> list[Point]:
    """Skipped seeds to run beside a phase's lone runs, so that no run has the machine to itself
    (it would run faster than its peers): the settings closest to their family's best go first.
    Seeds that ran (now or as an earlier partner) leave ``left_out``'s records, and an emptied
    record leaves ``left_out``."""
    for record in left_out:
        width = parse_width(record["width"])
        record["seeds_skipped"] = [
            s for s in record["seeds_skipped"]
            if Point(record["model"], width, record["image_size"], record["budget_min"], s).name not in done.points
        ]  # fmt: skip
    fresh = sum(p.name not in done.points for p in todo)
    wanted = (-fresh) % plan.jobs if plan.jobs > 1 and fresh and not plan.report_only else 0
    partners = []
    for record in sorted(left_out, key=lambda k: k["family_best_first_seed_val_mdice"] - k["first_seed_val_mdice"]):
        while wanted and record["seeds_skipped"]:
            seed = record["seeds_skipped"].pop(0)
            partners.append(Point(record["model"], parse_width(record["width"]), record["image_size"],
                                  record["budget_min"], seed))  # fmt: skip
            wanted -= 1
    left_out[:] = [k for k in left_out if k["seeds_skipped"]]
    return partners


def _run_all(plan: FrontierPlan, todo: list[Point], say: Callable[[str], None], done: Progress) -> None:
    """Run ``todo``, ``plan.jobs`` at a time, under one bar whose ETA counts the budgets left, into
    ``done``. A run that fails does not stop the others; once they end, the report is written from
    what finished and the failures are raised in one line."""
    fresh = [p for p in todo if not (plan.points / f"{p.name}.json").is_file()]
    for p in todo:
        if p not in fresh:
            say(f"{p.name}: finished earlier, skipped")
        elif plan.report_only:
            done.missing.append({"name": p.name, "model": p.model, "width": width_label(p.width),
                                 "image_size": p.size, "budget_min": p.budget, "seed": p.seed})  # fmt: skip
            say(f"{p.name}: not trained yet")
    if plan.report_only or not fresh:
        return
    bar = tqdm(total=sum(p.budget for p in fresh), unit="min", desc=f"frontier ({len(fresh)} runs to train)",
               disable=bool(os.environ.get("NEXNET_QUIET")), dynamic_ncols=True)  # fmt: skip
    lock = threading.Lock()

    def one(point: Point) -> dict:
        result = run_point(plan, point)
        with lock:
            bar.update(point.budget)
            tqdm.write(f"{point.name}: {result['epochs']} epochs, {result['optimizer_steps']} steps, "
                       f"val mDice {result['best_val_mdice']:.4f}, test mDice {result['test_mdice']:.4f}")  # fmt: skip
        return result

    with ThreadPoolExecutor(max(1, plan.jobs)) as pool:
        futures = [pool.submit(one, p) for p in fresh]
    bar.close()
    failed = [str(f.exception()) for f in futures if f.exception() is not None]
    done.points.update((p.name, f.result()) for p, f in zip(fresh, futures) if f.exception() is None)
    if failed:
        report.write_report(plan.out, list(done.points.values()), done.skipped, _settings(plan))
        raise NexnetError(f"{len(failed)} run(s) failed, the others are kept: " + "; ".join(failed))


def _earlier_skips(plan: FrontierPlan) -> list[dict]:
    """The skipped seeds an earlier command recorded at budgets this one does not run: the report
    keeps saying why those settings have one seed."""
    report_file = plan.out / FRONTIER_RECORD
    if not report_file.is_file():
        return []
    earlier = json.loads(report_file.read_text()).get("skipped_seeds", [])
    return [k for k in earlier if k["budget_min"] not in plan.budgets and k["model"] in plan.models]


def _settings(plan: FrontierPlan) -> dict[str, Any]:
    settings = asdict(plan)
    settings.pop("report_only")
    settings.update(out=str(plan.out), widths=[width_label(w) for w in plan.widths], run_settings=RUN_SETTINGS)
    return settings
