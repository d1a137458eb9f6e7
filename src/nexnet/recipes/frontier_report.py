"""The frontier's rules and report: which seeds to run, each family's width chosen on validation,
paired test differences between families, and ``frontier.json``, ``frontier.md`` and ``frontier.png``.

A family's frontier at a budget is its width with the best mean *validation* mDice over seeds; the
test split is only read to report the chosen points and their paired differences.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from statistics import mean
from typing import Any

from ..errors import NexnetError
from ..evaluation.metrics import paired_difference
from ..io import atomic_write_json, atomic_write_text
from ..plots import frontier_chart


def _at(points: list[dict], budget: float, model: str, width: str | None = None) -> list[dict]:
    return [p for p in points if p["budget_min"] == budget and p["model"] == model
            and (width is None or p["width"] == width)]  # fmt: skip


def width_label(width: Fraction) -> str:
    """``1/8``, ``1``: how a width factor is written in flags, names and tables."""
    return str(width.numerator) if width.denominator == 1 else f"{width.numerator}/{width.denominator}"


def seeds_to_run(points: list[dict], budget: float, models: list[str], widths: list[Fraction], seeds: int,
                 skip_below: float | None) -> tuple[list[tuple[str, Fraction, int]], list[dict]]:  # fmt: skip
    """The (model, width, seed) runs after each width's first seed at ``budget``, and the widths left
    out: a width whose first seed validates more than ``skip_below`` under its family's best first
    seed runs no other seed (None: every width runs every seed)."""
    todo, skipped = [], []
    for model in models:
        first = {width_label(w): _at(points, budget, model, width_label(w)) for w in widths}
        scores = {w: next(p["best_val_mdice"] for p in ps if p["seed"] == 0) for w, ps in first.items() if ps}
        best = max(scores.values(), default=0.0)
        for width in widths:
            score = scores.get(width_label(width))
            if skip_below is not None and score is not None and score < best - skip_below:
                skipped.append({"model": model, "width": width_label(width), "budget_min": budget,
                                "seeds_skipped": list(range(1, seeds)), "first_seed_val_mdice": score,
                                "family_best_first_seed_val_mdice": best})  # fmt: skip
                continue
            todo += [(model, width, s) for s in range(1, seeds)]
    return todo, [s for s in skipped if s["seeds_skipped"]]


def choose_widths(points: list[dict], budget: float, models: list[str]) -> dict[str, Fraction]:
    """Each family's width with the best mean validation mDice over its seeds at ``budget``, among
    the widths that ran the most seeds (one lucky seed of a skipped width does not win); a tie goes
    to the narrower width."""
    chosen = {}
    for model in models:
        counts = {
            Fraction(w): len(_at(points, budget, model, w)) for w in {p["width"] for p in _at(points, budget, model)}
        }
        if counts:
            full = [w for w, n in counts.items() if n == max(counts.values())]
            score = {w: mean(p["best_val_mdice"] for p in _at(points, budget, model, width_label(w))) for w in full}
            chosen[model] = max(sorted(full), key=lambda w: (score[w], -w))
    return chosen


def per_image(points: list[dict]) -> dict[str, float]:
    """Each test image's Dice averaged over the points (the seeds of one width), which must all have
    scored the same images."""
    cases = set(points[0]["test_dice"])
    if any(set(p["test_dice"]) != cases for p in points):
        raise NexnetError("the runs of one width scored different test images; rerun them on one --split")
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


def frontiers(points: list[dict], models: list[str]) -> list[dict]:
    """Per budget: each family's chosen width, its mean validation and test mDice, and the first
    family minus each other one, at the chosen widths and at every width both measured."""
    rows = []
    for budget in sorted({p["budget_min"] for p in points}):
        chosen = choose_widths(points, budget, models)
        row: dict[str, Any] = {"budget_min": budget, "families": {}, "differences": []}
        for model, width in chosen.items():
            ps = _at(points, budget, model, width_label(width))
            row["families"][model] = {
                "width": width_label(width), "seeds": len(ps), "val_mdice": mean(p["best_val_mdice"] for p in ps),
                "test_mdice": mean(p["test_mdice"] for p in ps), "epochs": mean(p["epochs"] for p in ps),
                "widths_measured": sorted({p["width"] for p in _at(points, budget, model)}, key=Fraction),
            }  # fmt: skip
        first = models[0]
        for other in (m for m in models[1:] if m in chosen and first in chosen):
            pairs = [("chosen", chosen[first], chosen[other])]
            common = {p["width"] for p in _at(points, budget, first)} & {p["width"] for p in _at(points, budget, other)}
            pairs += [("same width", Fraction(w), Fraction(w)) for w in sorted(common, key=Fraction)]
            for kind, wa, wb in pairs:
                diff = compare(_at(points, budget, first, width_label(wa)), _at(points, budget, other, width_label(wb)))
                row["differences"].append({"a": first, "b": other, "pairing": kind, "a_width": width_label(wa),
                                           "b_width": width_label(wb), **diff})  # fmt: skip
        rows.append(row)
    return rows


def write_report(out: Path, points: list[dict], skipped: list[dict], settings: dict[str, Any]) -> dict[str, Any]:
    """``frontier.json`` (points without per-image Dice: those stay in ``points/``), ``frontier.md``
    and ``frontier.png``."""
    models = settings["models"]
    result = {"settings": settings, "points": [{k: v for k, v in p.items() if k != "test_dice"} for p in points],
              "skipped_seeds": skipped, "frontiers": frontiers(points, models)}  # fmt: skip
    atomic_write_json(out / "frontier.json", result)
    atomic_write_text(out / "frontier.md", markdown(result))
    lines = {m: [(r["budget_min"], r["families"][m]["test_mdice"], r["families"][m]["width"])
                 for r in result["frontiers"] if m in r["families"]] for m in models}  # fmt: skip
    faint = [(p["budget_min"], p["test_mdice"], p["model"]) for p in points]
    frontier_chart(out / "frontier.png", lines, faint, "training minutes (log scale)", "test mDice")
    return result


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    head = (f"# Frontier: {', '.join(s['models'])} on {s['dataset']}\n\n{s['image_size']} px, batch {s['batch_size']}, "
            f"{s['seeds']} seed(s), {s['jobs']} run(s) at a time with {s['threads'] or 'default'} thread(s) each; "
            "budgets are training wall time with validation, decoding excluded. Widths are chosen on validation "
            "mDice (mean over seeds); test mDice is the honest protocol (threshold 0.5, original size).\n")  # fmt: skip
    lines = [head, "## Frontier per budget\n", "| budget (min) | family | width (val-chosen) | seeds | epochs | "
             "val mDice | test mDice |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    longer = s.get("extend_best")
    for r in result["frontiers"]:
        for m, f in r["families"].items():
            measured = ", ".join(f["widths_measured"])
            if r["budget_min"] == longer:
                measured = f"chosen at {max(s['budgets']):g} min"
            lines.append(f"| {r['budget_min']:g} | {m} | {f['width']} (of {measured}) | {f['seeds']} | "
                         f"{f['epochs']:.1f} | {f['val_mdice']:.4f} | {f['test_mdice']:.4f} |")  # fmt: skip
    lines += ["", "## Paired test differences (per-image Dice averaged over seeds; 95% paired-bootstrap CI)\n",
              "| budget (min) | pairing | a (width) | b (width) | a test mDice | b test mDice | a - b | 95% CI | "
              "images |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["frontiers"]:
        for d in r["differences"]:
            lines.append(f"| {r['budget_min']:g} | {d['pairing']} | {d['a']} ({d['a_width']}) | {d['b']} "
                         f"({d['b_width']}) | {d['a_test_mdice']:.4f} | {d['b_test_mdice']:.4f} | {d['mean']:+.4f} "
                         f"| {_ci(d['ci95'])} | {d['cases']} |")  # fmt: skip
    lines += ["", "## Every point\n", "| model | width | budget (min) | seed | params (M) | GMACs | px | epochs | "
              "steps | images/s | best val mDice | test mDice [95% CI] |", "|" + "---|" * 12]  # fmt: skip
    for p in sorted(result["points"], key=lambda p: (p["budget_min"], p["model"], Fraction(p["width"]), p["seed"])):
        lines.append(f"| {p['model']} | {p['width']} | {p['budget_min']:g} | {p['seed']} | {p['params'] / 1e6:.2f} | "
                     f"{p['gmacs']:.3f} | {p['image_size']} | {p['epochs']} | {p['optimizer_steps']} | "
                     f"{p['images_per_s']} | {p['best_val_mdice']:.4f} | {p['test_mdice']:.4f} "
                     f"[{p['test_ci95'][0]:.3f}, {p['test_ci95'][1]:.3f}] |")  # fmt: skip
    if result["skipped_seeds"]:
        lines += ["", "Widths whose first seed validated more than the skip margin below their family's best "
                  "ran no other seed: " + "; ".join(f"{k['model']} {k['width']} at {k['budget_min']:g} min "
                  f"({k['first_seed_val_mdice']:.4f} against {k['family_best_first_seed_val_mdice']:.4f})"
                  for k in result["skipped_seeds"]) + "."]  # fmt: skip
    lines.append("\nimages/s: training images per second of training wall time, validation included.")
    return "\n".join(lines) + "\n"
