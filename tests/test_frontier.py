"""nexnet frontier: the selection rule (validation, never test), the skip rule, the paired difference
against a hand computation, and a toy grid run end to end, resumed."""

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from nexnet.cli import main
from nexnet.evaluation.metrics import bootstrap_ci, paired_difference
from nexnet.recipes import frontier as F
from nexnet.recipes import frontier_report as R
from nexnet.recipes.frontier import FrontierPlan, width_keywords
from nexnet.runtime import machine


def point(model, width, seed, val, test_dice, budget=10.0, size=128):
    return {"model": model, "width": width, "image_size": size, "budget_min": budget, "seed": seed,
            "best_val_mdice": val,
            "test_mdice": float(np.mean(list(test_dice.values()))), "test_dice": test_dice, "epochs": 3}  # fmt: skip


def test_width_is_chosen_on_validation_not_test():
    # Width 1/4 validates better; width 1/2 scores better on test. The frontier must take 1/4.
    pts = [
        point("unet", "1/4", 0, 0.80, {"a": 0.5, "b": 0.5}),
        point("unet", "1/4", 1, 0.78, {"a": 0.5, "b": 0.5}),
        point("unet", "1/2", 0, 0.79, {"a": 0.9, "b": 0.9}),
        point("unet", "1/2", 1, 0.77, {"a": 0.9, "b": 0.9}),
    ]
    assert R.choose(pts, 10.0, ["unet"]) == {"unet": (Fraction(1, 4), 128)}
    row = R.frontiers(pts, ["unet"])[0]["families"]["unet"]
    assert row["width"] == "1/4" and row["val_mdice"] == pytest.approx(0.79) and row["test_mdice"] == 0.5


def test_selection_uses_the_mean_over_seeds():
    # 1/8's first seed is the best single run, but 1/4 has the better mean.
    pts = [
        point("m", "1/8", 0, 0.90, {"a": 1}),
        point("m", "1/8", 1, 0.60, {"a": 1}),
        point("m", "1/4", 0, 0.80, {"a": 1}),
        point("m", "1/4", 1, 0.80, {"a": 1}),
    ]
    assert R.choose(pts, 10.0, ["m"]) == {"m": (Fraction(1, 4), 128)}


def test_image_size_is_chosen_like_the_width_and_ties_go_narrower():
    pts = [point("m", "1/4", 0, 0.80, {"a": 1}, size=64), point("m", "1/4", 0, 0.82, {"a": 0}, size=128),
           point("m", "1/8", 0, 0.82, {"a": 0}, size=128)]  # fmt: skip
    assert R.choose(pts, 10.0, ["m"]) == {"m": (Fraction(1, 8), 128)}  # tied with 1/4 at 128: the narrower


def test_paired_difference_matches_a_hand_computation():
    cases = ["c1", "c2", "c3", "c4"]
    a0, a1 = dict(zip(cases, [0.9, 0.6, 0.8, 0.4])), dict(zip(cases, [0.7, 0.8, 0.6, 0.2]))
    b0, b1 = dict(zip(cases, [0.5, 0.7, 0.9, 0.1])), dict(zip(cases, [0.7, 0.5, 0.7, 0.3]))
    pts = [
        point("nexnet_seg", "1/2", 0, 0.8, a0),
        point("nexnet_seg", "1/2", 1, 0.8, a1),
        point("unet", "1/2", 0, 0.7, b0),
        point("unet", "1/2", 1, 0.7, b1),
    ]
    # by hand: seeds averaged per image, a = [0.8, 0.7, 0.7, 0.3], b = [0.6, 0.6, 0.8, 0.2], a - b = [0.2, 0.1, -0.1, 0.1]
    diffs = R.frontiers(pts, ["nexnet_seg", "unet"])[0]["differences"]
    assert [d["pairing"] for d in diffs] == ["chosen", "same width"]
    d = diffs[0]
    assert d["mean"] == pytest.approx(0.075) and d["cases"] == 4
    assert d["a_test_mdice"] == pytest.approx(0.625) and d["b_test_mdice"] == pytest.approx(0.55)
    assert d["ci95"] == pytest.approx(list(bootstrap_ci([0.2, 0.1, -0.1, 0.1])))
    assert d["ci95"][0] < 0.075 < d["ci95"][1]


def test_paired_difference_refuses_unpaired_cases():
    with pytest.raises(ValueError, match="same cases"):
        paired_difference([0.1, 0.2], [0.3])


def test_a_width_far_below_its_family_best_skips_its_other_seeds():
    pts = [
        point("unet", "1/8", 0, 0.75, {"a": 1}),
        point("unet", "1/4", 0, 0.80, {"a": 1}),
        point("unet", "1/2", 0, 0.78, {"a": 1}),
    ]
    settings = [(Fraction(1, 8), 128), (Fraction(1, 4), 128), (Fraction(1, 2), 128)]
    todo, skipped = R.seeds_to_run(pts, 10.0, ["unet"], settings, 3, 0.03)
    quarter, half = (Fraction(1, 4), 128), (Fraction(1, 2), 128)
    assert todo == [("unet", quarter, 1), ("unet", quarter, 2), ("unet", half, 1), ("unet", half, 2)]
    assert [(s["width"], s["seeds_skipped"]) for s in skipped] == [("1/8", [1, 2])]
    todo, skipped = R.seeds_to_run(pts, 10.0, ["unet"], settings, 3, None)
    assert len(todo) == 6 and not skipped


def test_width_factors_scale_each_family_standard_widths():
    assert width_keywords("nexnet_seg", Fraction(1, 8)) == {"widths": [4, 8, 16, 32, 32, 64]}
    assert width_keywords("unet", Fraction(1, 4)) == {"base_width": 16}


@pytest.mark.parametrize("flags, message", [
    (["--widths", "1/3"], "do not scale to whole channels"),
    (["--widths", "zero"], "--widths 'zero': give width factors"),
    (["--budgets", "0"], "--budgets '0': give minutes as positive numbers"),
    (["--models", "transunet"], "--models transunet: it has no width setting"),
    (["--models", "unet9"], "--models: unknown model 'unet9'"),
    (["--budgets", "10", "--extend-best", "10"], "--extend-best 10: give minutes beyond the largest budget"),
    (["--batch-size", "0"], "--batch-size 0: give a positive number"),
    (["--image-size", "100"], "--image-size 100: nexnet_seg takes multiples of 32 px, e.g. 96"),
    (["--image-size", "big"], "--image-size 'big': give sizes in px as whole numbers"),
])  # fmt: skip
def test_bad_frontier_flags_are_one_line(tmp_path, data, capsys, flags, message):
    args = ["frontier", "--dataset", "folder", "--data-root", str(data), "--out", str(tmp_path / "f"), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "f").exists()  # refused before anything is written


def test_toy_frontier_runs_reports_and_resumes(tmp_path, data, capsys):
    out = tmp_path / "frontier"
    args = ["frontier", "--dataset", "folder", "--data-root", str(data), "--split", "seeded",
            "--models", "nexnet_seg,unet", "--widths", "1/8", "--budgets", "0.1", "--seeds", "1",
            "--image-size", "32", "--batch-size", "8", "--jobs", "2", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "frontier.json").read_text())
    assert (out / "frontier.md").is_file() and (out / "frontier.png").stat().st_size > 0
    assert len(result["points"]) == 2
    for p in result["points"]:
        assert p["epochs"] >= 1 and p["train_seconds"] <= 0.1 * 60 + 5  # stopped by the budget
        assert p["params"] > 0 and p["gmacs"] > 0 and p["image_size"] == 32
        assert p["machine"] == machine() and "cores, " in p["machine"]  # what the wall-time budget bought
        assert torch.backends.cpu.get_cpu_capability() in p["machine"]  # one model name, other vector units
    assert f"Machine: {machine()}." in (out / "frontier.md").read_text()
    records = {f.stem: json.loads(f.read_text()) for f in (out / "points").glob("*.json")}
    assert len(records) == 2
    # the reported difference is the hand-computed one from the per-image test Dice of the records
    # (the average over seeds: test_paired_difference_matches_a_hand_computation)
    by = {r["model"]: r["test_dice"] for r in records.values()}
    cases = sorted(by["unet"])
    a, b = [by["nexnet_seg"][c] for c in cases], [by["unet"][c] for c in cases]
    chosen = result["frontiers"][0]["differences"][0]
    assert chosen["pairing"] == "chosen" and chosen["cases"] == len(cases)
    assert chosen["mean"] == pytest.approx(float(np.mean(np.subtract(a, b))))
    # a rerun trains nothing: every point is taken from points/
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def fake_runs(monkeypatch, val_of, fail=()):
    """run_point replaced: validation mDice from ``val_of(model, width, budget, seed)``, test Dice on
    two images; the points it was asked for, in order."""
    asked = []

    def run_point(plan, point):
        asked.append((point.model, F.width_label(point.width), point.budget, point.seed))
        assert point.size == 128
        if point.name in fail:
            raise F.NexnetError(f"{point.name}: train failed (boom)")
        val = val_of(point.model, point.width, point.budget, point.seed)
        record = {"model": point.model, "width": F.width_label(point.width), "budget_min": point.budget,
                  "image_size": point.size,
                  "seed": point.seed, "best_val_mdice": val, "test_mdice": 0.5, "test_ci95": [0.4, 0.6],
                  "test_dice": {"a": 0.4, "b": 0.6}, "epochs": 2, "optimizer_steps": 4, "images_per_s": 1.0,
                  "params": 10, "gmacs": 0.1}  # fmt: skip
        F.atomic_write_json(plan.points / f"{point.name}.json", record)
        return record

    monkeypatch.setattr(F, "run_point", run_point)
    return asked


def plan_for(tmp_path, data, **kw):
    settings = dict(dataset="folder", data_root=str(data), out=tmp_path / "f", models=["nexnet_seg", "unet"],
                    widths=[Fraction(1, 8), Fraction(1, 4)], budgets=[1.0, 2.0], seeds=2)  # fmt: skip
    return FrontierPlan(**{**settings, **kw})


def test_phases_skip_far_widths_and_extend_the_chosen_one(tmp_path, data, monkeypatch):
    # unet 1/8 validates 0.05 under unet 1/4 at every budget: it runs seed 0 only
    asked = fake_runs(monkeypatch, lambda m, w, b, s: 0.8 - (0.05 if (m, w) == ("unet", Fraction(1, 8)) else 0.0)
                      + (0.001 if w == Fraction(1, 4) else 0.0))  # fmt: skip
    result = F.run_frontier(plan_for(tmp_path, data, extend_best=5.0), say=lambda _: None)
    assert ("unet", "1/8", 1.0, 1) not in asked and ("unet", "1/8", 2.0, 1) not in asked
    assert ("nexnet_seg", "1/8", 1.0, 1) in asked  # 0.001 below its best: within the margin
    assert [k["width"] for k in result["skipped_seeds"]] == ["1/8", "1/8"]
    # the families side by side: width by width, then seed by seed
    assert asked[:4] == [("nexnet_seg", "1/8", 1.0, 0), ("unet", "1/8", 1.0, 0),
                         ("nexnet_seg", "1/4", 1.0, 0), ("unet", "1/4", 1.0, 0)]  # fmt: skip
    assert asked[4:7] == [("nexnet_seg", "1/8", 1.0, 1), ("nexnet_seg", "1/4", 1.0, 1), ("unet", "1/4", 1.0, 1)]
    assert asked[-4:] == [("nexnet_seg", "1/4", 5.0, 0), ("unet", "1/4", 5.0, 0),
                          ("nexnet_seg", "1/4", 5.0, 1), ("unet", "1/4", 5.0, 1)]  # fmt: skip
    assert "chosen at 2 min" in (tmp_path / "f" / "frontier.md").read_text()
    # a rerun asks for nothing
    asked.clear()
    F.run_frontier(plan_for(tmp_path, data, extend_best=5.0), say=lambda _: None)
    assert asked == []


def test_a_failed_run_keeps_the_others_and_is_one_line(tmp_path, data, monkeypatch):
    asked = fake_runs(monkeypatch, lambda *_: 0.7, fail={"unet-w1_8-128px-1min-seed0"})
    plan = plan_for(tmp_path, data, budgets=[1.0], seeds=1)
    with pytest.raises(F.NexnetError, match=r"1 run\(s\) failed.*unet-w1_8-128px-1min-seed0: train failed"):
        F.run_frontier(plan, say=lambda _: None)
    assert len(asked) == 4 and len(list((tmp_path / "f" / "points").glob("*.json"))) == 3
    assert len(json.loads((tmp_path / "f" / "frontier.json").read_text())["points"]) == 3


def test_a_rerun_with_another_protocol_is_refused(tmp_path, data, monkeypatch):
    fake_runs(monkeypatch, lambda *_: 0.7)
    F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], seeds=1), say=lambda _: None)
    with pytest.raises(F.NexnetError, match="made with --batch-size 16, not 8; pass the same --batch-size"):
        F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], seeds=1, batch_size=8), say=lambda _: None)
    F.run_frontier(plan_for(tmp_path, data, budgets=[1.0, 2.0], seeds=1), say=lambda _: None)  # more budgets: fine


def test_a_run_that_train_refuses_names_its_log(tmp_path, data, capsys):
    out = tmp_path / "f"
    assert main(["frontier", "--dataset", "folder", "--data-root", str(data), "--split", "seeded", "--models", "unet",
                 "--widths", "1/8", "--budgets", "0.1", "--seeds", "1", "--image-size", "32", "--set", "train.nope=1", "--quiet",
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unet-w1_8-32px-0.1min-seed0: train failed" in err[0]
    assert str(out / "logs" / "unet-w1_8-32px-0.1min-seed0.train.log") in err[0]


def test_report_only_trains_nothing_and_lists_what_is_left(tmp_path, data, monkeypatch):
    asked = fake_runs(monkeypatch, lambda *_: 0.7)
    with pytest.raises(F.NexnetError, match="--report-only: .* holds no finished runs yet"):
        F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], seeds=1, report_only=True), say=lambda _: None)
    F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], seeds=1), say=lambda _: None)
    asked.clear()
    grown = plan_for(tmp_path, data, widths=[Fraction(1, 8), Fraction(1, 4), Fraction(1, 2)], budgets=[1.0, 2.0],
                     seeds=1, report_only=True)  # fmt: skip
    result = F.run_frontier(grown, say=lambda _: None)
    assert asked == [] and len(result["points"]) == 4
    missing = [m["name"] for m in result["missing_runs"]]
    assert missing[:2] == ["nexnet_seg-w1_2-128px-1min-seed0", "unet-w1_2-128px-1min-seed0"] and len(missing) == 8
    assert result["frontiers"][0]["families"]["unet"]["runs_missing"] == 1
    text = (tmp_path / "f" / "frontier.md").read_text()
    assert "PARTIAL: 1 run(s) not trained yet" in text and "Not trained yet (8)" in text


def test_report_only_rewrites_the_record_byte_for_byte(tmp_path, data, monkeypatch):
    # the run appends points as they finish; --report-only reads them back in file-name order
    fake_runs(monkeypatch, lambda m, w, b, s: 0.7 + 0.01 * s)
    F.run_frontier(plan_for(tmp_path, data, budgets=[1.0]), say=lambda _: None)
    record = tmp_path / "f" / "frontier.json"
    written = record.read_text()
    names = [(p["budget_min"], p["seed"], p["width"], p["model"]) for p in json.loads(written)["points"]]
    assert names[:2] == [(1.0, 0, "1/8", "nexnet_seg"), (1.0, 0, "1/8", "unet")] and names[-1][1] == 1
    F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], report_only=True), say=lambda _: None)
    assert record.read_text() == written


def test_points_another_command_added_count_in_selection_and_the_skip_rule(tmp_path, data, monkeypatch):
    asked = fake_runs(monkeypatch, lambda m, w, b, s: 0.9 if w == Fraction(1, 16) else 0.7)
    F.run_frontier(plan_for(tmp_path, data, models=["unet"], widths=[Fraction(1, 16)], budgets=[1.0], seeds=1),
                   say=lambda _: None)  # fmt: skip
    asked.clear()
    result = F.run_frontier(plan_for(tmp_path, data, models=["unet"], budgets=[1.0]), say=lambda _: None)
    assert asked == [("unet", "1/8", 1.0, 0), ("unet", "1/4", 1.0, 0)]  # both 0.2 under 1/16: no second seed
    assert {k["width"] for k in result["skipped_seeds"]} == {"1/8", "1/4"}
    assert result["frontiers"][0]["families"]["unet"]["width"] == "1/16"


def test_a_later_command_at_other_budgets_keeps_the_earlier_skip_records(tmp_path, data, monkeypatch):
    fake_runs(monkeypatch, lambda m, w, b, s: 0.8 - (0.05 if (m, w) == ("unet", Fraction(1, 8)) else 0.0))
    F.run_frontier(plan_for(tmp_path, data, budgets=[1.0]), say=lambda _: None)
    result = F.run_frontier(plan_for(tmp_path, data, widths=[Fraction(1, 4)], budgets=[2.0], seeds=1),
                            say=lambda _: None)  # fmt: skip
    assert [(k["model"], k["width"], k["budget_min"]) for k in result["skipped_seeds"]] == [("unet", "1/8", 1.0)]
    assert "up to 2 seed(s) per point" in (tmp_path / "f" / "frontier.md").read_text()


def test_a_lone_run_gets_a_skipped_seed_beside_it(tmp_path, data, monkeypatch):
    # unet 1/8 is 0.05 under its family's best: skipped, unless a phase of two jobs would leave a run alone
    asked = fake_runs(monkeypatch, lambda m, w, b, s: 0.8 - (0.05 if (m, w) == ("unet", Fraction(1, 8)) else 0.0))
    result = F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], jobs=2), say=lambda _: None)
    assert len(asked) == 8 and ("unet", "1/8", 1.0, 1) in asked[4:]  # three second seeds and their partner
    assert result["skipped_seeds"] == []
    asked.clear()
    result = F.run_frontier(plan_for(tmp_path, data, budgets=[1.0], jobs=2), say=lambda _: None)
    assert asked == [] and result["skipped_seeds"] == []  # the partner's seed counts as run, not skipped
    with_one_job = F.run_frontier(plan_for(tmp_path, data, out=tmp_path / "g", budgets=[1.0]), say=lambda _: None)
    assert [k["width"] for k in with_one_job["skipped_seeds"]] == ["1/8"]


def test_points_from_two_machines_are_flagged_in_the_report():
    points = [{"machine": "Xeon, 2 cores, AMX, torch 2.13"}, {"machine": "EPYC, 2 cores, torch 2.13"}, {}]
    (line,) = R._machines(points)
    assert line.startswith("**Points from 3 machines** (1 on Xeon, 2 cores, AMX, torch 2.13; 1 on EPYC")
    assert "1 on an unrecorded machine" in line and "compare points of one machine only" in line
    assert R._machines(points[:1]) == ["Machine: Xeon, 2 cores, AMX, torch 2.13.\n"]
    assert R._short("AMD EPYC, 2 cores, AVX512, torch 2.13") == "AMD EPYC, AVX512"  # the table's column
    assert R._short("AMD EPYC, 2 cores, AVX2, torch 2.13") == "AMD EPYC, AVX2" and R._short(None) == "not recorded"
