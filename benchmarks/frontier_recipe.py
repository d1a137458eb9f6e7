"""Does a changed recipe lift each family's frontier? Two ``nexnet frontier`` folders, one machine.

    python benchmarks/frontier_recipe.py --data-root ../shared/datasets/kvasir_seg \
        --base docs/evidence/frontier-kvasir-xeon --candidate docs/evidence/frontier-kvasir-xeon-bf16 [--seeds 1]

Both folders hold the same grid (models, widths, image size, budget, seeds, machine sharing), one
trained with the default recipe and one with a change (``--set train.amp=true``, say). For each
family and budget, each folder chooses its own setting on validation (``frontier``'s rule), and the
two chosen settings are compared image by image on the validation cases (``evaluate --subset
val`` of each run's ``best/``, once), each image's Dice averaged over seeds, with a paired
bootstrap CI. The change lifts a family only if that CI lies above zero (issue 26, part 3); the
test difference is printed beside it and decides nothing. Points from two machines are refused:
a budget is wall time. Writes ``CANDIDATE/recipe.md`` and ``CANDIDATE/recipe.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frontier_lift import compare, seed_mean, validation_dice

from nexnet.recipes.frontier_report import choose, setting_label, setting_of


def read_points(folder: Path, seeds: int | None = None) -> list[dict]:
    points = [json.loads(p.read_text()) for p in sorted((folder / "points").glob("*.json"))]
    points = [p for p in points if seeds is None or p["seed"] < seeds]
    if not points:
        raise SystemExit(f"{folder}: no points/; run its nexnet frontier first")
    return points


def family_lift(args: argparse.Namespace, base: list[dict], cand: list[dict], budget: float,
                model: str) -> dict:  # fmt: skip
    """The candidate's chosen setting minus the base's, for one family at one budget."""
    sides = {}
    for label, folder, points in (("base", Path(args.base), base), ("candidate", Path(args.candidate), cand)):
        setting = choose(points, budget, [model])[model]
        chosen = [p for p in points if p["budget_min"] == budget and p["model"] == model and setting_of(p) == setting]
        val = seed_mean(validation_dice(args, folder / "runs", [p["name"] for p in chosen]))
        test = seed_mean([p["test_dice"] for p in chosen])
        epochs, rate = (sum(p[k] for p in chosen) / len(chosen) for k in ("epochs", "images_per_s"))
        sides[label] = {"setting": setting_label(setting), "seeds": len(chosen), "val": val, "test": test,
                        "epochs": epochs, "images_per_s": rate}  # fmt: skip
    row = {"model": model, "budget_min": budget,
           **{f"{k}_{label}": v for label, side in sides.items() for k, v in side.items() if k not in ("val", "test")},
           "val": compare(sides["candidate"]["val"], sides["base"]["val"]),
           "test": compare(sides["candidate"]["test"], sides["base"]["test"])}  # fmt: skip
    row["lifts"] = row["val"]["ci95"][0] > 0
    return row


def markdown(args: argparse.Namespace, rows: list[dict]) -> str:
    lines = [f"Candidate `{args.candidate}` against base `{args.base}`: each family's setting chosen on validation "
             "in each folder; candidate minus base, per image averaged over seeds, paired 95% CI.", "",
             "| budget (min) | family | base: setting, epochs, img/s | candidate: setting, epochs, img/s | "
             "validation (decides) | test (reported only) | lifts |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        v, t = r["val"], r["test"]
        lines.append(f"| {r['budget_min']:g} | {r['model']} | {r['setting_base']}, {r['epochs_base']:.1f}, "
                     f"{r['images_per_s_base']:.1f} | {r['setting_candidate']}, {r['epochs_candidate']:.1f}, "
                     f"{r['images_per_s_candidate']:.1f} | {v['mean']:+.4f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] "
                     f"| {t['mean']:+.4f} [{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}] | "
                     f"{'yes' if r['lifts'] else 'no'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--dataset", default="kvasir")
    p.add_argument("--base", required=True, help="the frontier folder of the default recipe")
    p.add_argument("--candidate", required=True, help="the frontier folder of the changed recipe")
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="use seeds 0..N-1 only, on both sides (a one-seed screen against seed 0 of the base)",
    )
    args = p.parse_args()
    base, cand = read_points(Path(args.base), args.seeds), read_points(Path(args.candidate), args.seeds)
    machines = {pt.get("machine") for pt in base + cand}
    if len(machines) != 1 or None in machines:
        raise SystemExit(f"the points come from {len(machines)} machines (or unrecorded ones): compare one machine's")
    rows = [family_lift(args, base, cand, budget, model)
            for budget in sorted({pt["budget_min"] for pt in base} & {pt["budget_min"] for pt in cand})
            for model in sorted({pt["model"] for pt in base} & {pt["model"] for pt in cand})]  # fmt: skip
    out = Path(args.candidate)
    (out / "recipe.json").write_text(json.dumps({"machine": machines.pop(), "rows": rows}, indent=2) + "\n")
    (out / "recipe.md").write_text(markdown(args, rows))
    print(markdown(args, rows))


if __name__ == "__main__":
    main()
