"""The frontier's rules and report: which seeds to run, each family's setting (width and image
size) chosen on validation, paired test differences between families, and ``frontier.json``,
``frontier.md`` and ``frontier.png``.

A family's frontier at a budget is its setting with the best mean *validation* mDice over seeds; the
test split is only read to report the chosen points and their paired differences.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path
from statistics import mean
from typing import Any

from ..errors import NexnetError
from ..evaluation.metrics import paired_difference
from ..io import atomic_write_json, atomic_write_text
from ..outputs import FRONTIER_RECORD
from ..plots import frontier_chart

Setting = tuple[Fraction, int]  # a width factor and an image size


def width_label(width: Fraction) -> str:
    """``1/8``, ``1``: how a width factor is written in flags, names and tables."""
    return str(width.numerator) if width.denominator == 1 else f"{width.numerator}/{width.denominator}"


def setting_of(point: dict) -> Setting:
    return Fraction(point["width"]), int(point["image_size"])


def setting_label(setting: Setting, sizes: int = 2) -> str:
    """``1/4, 128 px``; the width alone where the frontier has one image size (``sizes``)."""
    return width_label(setting[0]) + (f", {setting[1]} px" if sizes > 1 else "")


def _at(points: list[dict], budget: float, model: str, setting: Setting | None = None) -> list[dict]:
    return [p for p in points if p["budget_min"] == budget and p["model"] == model
            and (setting is None or setting_of(p) == setting)]  # fmt: skip


def seeds_to_run(points: list[dict], budget: float, models: list[str], settings: list[Setting], seeds: int,
                 skip_below: float | None) -> tuple[list[tuple[str, Setting, int]], list[dict]]:  # fmt: skip
    """The (model, setting, seed) runs after each setting's first seed at ``budget``, and the
    settings left out: one whose first seed validates more than ``skip_below`` under its family's
    best first seed runs no other seed (None: every setting runs every seed)."""
    todo, skipped = [], []
    for model in models:
        scores = {st: p["best_val_mdice"] for st in settings for p in _at(points, budget, model, st) if p["seed"] == 0}
        # the family's best first seed over every setting it measured, those of other commands too
        best = max((p["best_val_mdice"] for p in _at(points, budget, model) if p["seed"] == 0), default=0.0)
        for st in settings:
            score = scores.get(st)
            if skip_below is not None and score is not None and score < best - skip_below and seeds > 1:
                skipped.append({"model": model, "width": width_label(st[0]), "image_size": st[1],
                                "budget_min": budget, "seeds_skipped": list(range(1, seeds)),
                                "first_seed_val_mdice": score, "family_best_first_seed_val_mdice": best})  # fmt: skip
                continue
            todo += [(model, st, s) for s in range(1, seeds)]
    return todo, skipped


def choose(points: list[dict], budget: float, models: list[str]) -> dict[str, Setting]:
    """Each family's setting with the best mean validation mDice over its seeds at ``budget``, among
    the settings that ran the most seeds (one lucky seed of a skipped one does not win); a tie goes
    to the narrower width, then the smaller image."""
    chosen = {}
    for model in models:
        counts: dict[Setting, int] = {}
        for p in _at(points, budget, model):
            counts[setting_of(p)] = counts.get(setting_of(p), 0) + 1
        if counts:
            full = [st for st, n in counts.items() if n == max(counts.values())]
            score = {st: mean(p["best_val_mdice"] for p in _at(points, budget, model, st)) for st in full}
            chosen[model] = max(sorted(full), key=lambda st: (score[st], -st[0], -st[1]))
    return chosen


def per_image(points: list[dict]) -> dict[str, float]:
    """Each test image's Dice averaged over the points (the seeds of one setting), which must all
    have scored the same images."""
    cases = set(points[0]["test_dice"])
    if any(set(p["test_dice"]) != cases for p in points):
        raise NexnetError("the runs of one setting scored different test images; rerun them on one --split")
    return {c: mean(p["test_dice"][c] for p in points) for c in sorted(cases)}


def compare(a: list[dict], b: list[dict], seed: int = 0) -> dict[str, Any]:
    """``a`` minus ``b`` on the same test images (each side's Dice averaged over its seeds first):
    the mean per-image difference and its paired-bootstrap 95% CI."""
    da, db = per_image(a), per_image(b)
    if set(da) != set(db) or not da:
        raise NexnetError(f"{a[0]['model']} and {b[0]['model']} were scored on different test images; "
                          "a paired comparison needs the same split (--split, --split-seed) for both")  # fmt: skip
    cases = sorted(da)
    diff = paired_difference([da[c] for c in cases], [db[c] for c in cases], seed=seed)
    return {**diff, "a_test_mdice": mean(da[c] for c in cases), "b_test_mdice": mean(db[c] for c in cases)}


def _family(points: list[dict], budget: float, model: str, st: Setting) -> dict[str, Any]:
    ps = _at(points, budget, model, st)
    measured = sorted({setting_of(p) for p in _at(points, budget, model)})
    return {"width": width_label(st[0]), "image_size": st[1], "seeds": len(ps),
            "val_mdice": mean(p["best_val_mdice"] for p in ps), "test_mdice": mean(p["test_mdice"] for p in ps),
            "epochs": mean(p["epochs"] for p in ps),
            "measured": [f"{width_label(w)}@{size}" for w, size in measured]}  # fmt: skip


def frontiers(points: list[dict], models: list[str]) -> list[dict]:
    """Per budget: each family's chosen setting, its mean validation and test mDice, and the first
    family minus each other one, at the chosen settings and at every setting both measured."""
    rows = []
    for budget in sorted({p["budget_min"] for p in points}):
        chosen = choose(points, budget, models)
        row: dict[str, Any] = {"budget_min": budget, "differences": [],
                               "families": {m: _family(points, budget, m, st) for m, st in chosen.items()}}  # fmt: skip
        first = models[0]
        for other in (m for m in models[1:] if m in chosen and first in chosen):
            common = {setting_of(p) for p in _at(points, budget, first)} & {
                setting_of(p) for p in _at(points, budget, other)}  # fmt: skip
            pairs = [("chosen", chosen[first], chosen[other])] + [("same width", st, st) for st in sorted(common)]
            for kind, sa, sb in pairs:
                diff = compare(_at(points, budget, first, sa), _at(points, budget, other, sb))
                row["differences"].append({"a": first, "b": other, "pairing": kind, "a_width": width_label(sa[0]),
                                           "a_image_size": sa[1], "b_width": width_label(sb[0]),
                                           "b_image_size": sb[1], **diff})  # fmt: skip
        rows.append(row)
    return rows


def write_report(out: Path, points: list[dict], skipped: list[dict], settings: dict[str, Any],
                 missing: list[dict] | None = None) -> dict[str, Any]:  # fmt: skip
    """``frontier.json`` (points without per-image Dice: those stay in ``points/``), ``frontier.md``
    and ``frontier.png``; ``missing``: the runs not trained yet, whose budgets are marked partial."""
    models, sizes = settings["models"], len(settings["image_sizes"])
    points = sorted(points, key=_run_order)  # the same file whichever command (or --report-only) wrote it
    rows = frontiers(points, models)
    for row in rows:
        for m, family in row["families"].items():
            family["runs_missing"] = sum(1 for x in missing or [] if x["budget_min"] == row["budget_min"]
                                         and x["model"] == m)  # fmt: skip
    result = {"settings": settings, "points": [{k: v for k, v in p.items() if k != "test_dice"} for p in points],
              "skipped_seeds": skipped, "missing_runs": missing or [], "frontiers": rows}  # fmt: skip
    atomic_write_json(out / FRONTIER_RECORD, result)
    atomic_write_text(out / "frontier.md", markdown(result))
    lines = {m: [(r["budget_min"], f["test_mdice"], setting_label((Fraction(f["width"]), f["image_size"]), sizes))
                 for r in result["frontiers"] if (f := r["families"].get(m))] for m in models}  # fmt: skip
    faint = [(p["budget_min"], p["test_mdice"], p["model"]) for p in points]
    frontier_chart(out / "frontier.png", lines, faint, "training minutes (log scale)", "test mDice")
    return result


def _run_order(p: dict[str, Any]) -> tuple:
    """Budget, seed, width, size, model: the order a frontier trains its runs in."""
    return p["budget_min"], p["seed"], Fraction(p["width"]), p["image_size"], p["model"]


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    sizes = ", ".join(map(str, sorted({p["image_size"] for p in result["points"]}) or s["image_sizes"]))
    seeds = len({p["seed"] for p in result["points"]}) or s["seeds"]
    head = (f"# Frontier: {', '.join(s['models'])} on {s['dataset']}\n\n{sizes} px, batch {s['batch_size']}, "
            f"up to {seeds} seed(s) per point (the seeds column), {s['jobs']} run(s) at a time with "
            f"{s['threads'] or 'default'} thread(s) each; "
            "budgets are training wall time with validation, decoding excluded. Each family's width (and image "
            "size) is chosen on validation mDice (mean over seeds); test mDice is the honest protocol (threshold "
            "0.5, original size).\n")  # fmt: skip
    lines = [head, "## Frontier per budget\n", "| budget (min) | family | chosen on validation | of | seeds | epochs "
             "| val mDice | test mDice |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["frontiers"]:
        for m, f in r["families"].items():
            measured = ", ".join(f["measured"])
            if r["budget_min"] == s.get("extend_best"):
                measured = f"chosen at {max(s['budgets']):g} min"
            if f.get("runs_missing"):
                measured += f"; PARTIAL: {f['runs_missing']} run(s) not trained yet"
            lines.append(f"| {r['budget_min']:g} | {m} | {f['width']}, {f['image_size']} px | {measured} | "
                         f"{f['seeds']} | {f['epochs']:.1f} | {f['val_mdice']:.4f} | "
                         f"{f['test_mdice']:.4f} |")  # fmt: skip
    lines += ["", "## Paired test differences (per-image Dice averaged over seeds; 95% paired-bootstrap CI)\n",
              "| budget (min) | pairing | a | b | a test mDice | b test mDice | a - b | 95% CI | images |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["frontiers"]:
        for d in r["differences"]:
            lines.append(f"| {r['budget_min']:g} | {d['pairing']} | {d['a']} {d['a_width']}, {d['a_image_size']} px "
                         f"| {d['b']} {d['b_width']}, {d['b_image_size']} px | {d['a_test_mdice']:.4f} | "
                         f"{d['b_test_mdice']:.4f} | {d['mean']:+.4f} | {_ci(d['ci95'])} | {d['cases']} |")  # fmt: skip
    return "\n".join(lines[:1] + _machines(result["points"]) + lines[1:] + _point_table(result)) + "\n"


UNRECORDED = "an unrecorded machine (points made before machines were recorded)"


def _machines(points: list[dict]) -> list[str]:
    """A warning when the points come from more than one machine: a budget is wall time, so a
    faster machine gives its points more steps, and comparing them with the others is unfair."""
    counts = Counter(p.get("machine") or UNRECORDED for p in points)
    if len(counts) < 2:
        return [f"Machine: {next(iter(counts), UNRECORDED)}.\n"]
    found = "; ".join(f"{n} on {m}" for m, n in counts.items())
    return [f"**Points from {len(counts)} machines** ({found}): a budget is wall time, so compare points of one "
            "machine only (the machine column of Every point).\n"]  # fmt: skip


def _short(machine: str | None) -> str:
    """The CPU and its vector units, without the core count and torch's version."""
    if not machine:
        return "not recorded"
    return ", ".join(p for p in machine.split(", ") if not p.endswith(" cores") and not p.startswith("torch "))


def _point_table(result: dict[str, Any]) -> list[str]:
    lines = ["", "## Every point\n", "| model | width | px | budget (min) | seed | params (M) | GMACs | epochs | "
             "steps | images/s | best val mDice | test mDice [95% CI] | machine |", "|" + "---|" * 13]  # fmt: skip
    order = sorted(result["points"], key=lambda p: (p["budget_min"], p["model"], *setting_of(p), p["seed"]))
    for p in order:
        lines.append(f"| {p['model']} | {p['width']} | {p['image_size']} | {p['budget_min']:g} | {p['seed']} | "
                     f"{p['params'] / 1e6:.2f} | {p['gmacs']:.3f} | {p['epochs']} | {p['optimizer_steps']} | "
                     f"{p['images_per_s']} | {p['best_val_mdice']:.4f} | {p['test_mdice']:.4f} "
                     f"[{p['test_ci95'][0]:.3f}, {p['test_ci95'][1]:.3f}] | {_short(p.get('machine'))} |")  # fmt: skip
    if result["skipped_seeds"]:
        lines += ["", "Settings whose first seed validated more than the skip margin below their family's best "
                  "ran no other seed: " + "; ".join(f"{k['model']} {k['width']}, {k['image_size']} px at "
                  f"{k['budget_min']:g} min ({k['first_seed_val_mdice']:.4f} against "
                  f"{k['family_best_first_seed_val_mdice']:.4f})" for k in result["skipped_seeds"]) + "."]  # fmt: skip
    if result["missing_runs"]:
        lines += ["", f"Not trained yet ({len(result['missing_runs'])}): "
                  + ", ".join(x["name"] for x in result["missing_runs"]) + "."]  # fmt: skip
    lines.append("\nimages/s: training images per second of training wall time, validation included. GMACs: per "
                 "image, forward pass, at the run's image size.")  # fmt: skip
    return lines
