"""``nexnet check-data``: what is in a dataset folder, and whether it can be used."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .adapters import get_adapter
from .cache import CaseFacts, scan
from .splits import Split, build_split, check_overlap, cross_part_duplicates


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems


def _range(facts: list[CaseFacts]) -> str:
    if not facts:
        return "-"
    areas = sorted(facts, key=lambda f: f.width * f.height)
    sizes = {(f.width, f.height) for f in facts}
    lo, hi = areas[0], areas[-1]
    return f"{lo.width}x{lo.height} to {hi.width}x{hi.height} ({len(sizes)} distinct, width x height)"


def check_dataset(
    dataset: str, root: str | Path, split_name: str | None = None, seed: int = 0,
    skip_bad: bool = False, mask_suffix: str | None = None, workers: int | None = None,
) -> tuple[Report, Split | None]:  # fmt: skip
    """Discover, decode and summarise a dataset; problems make it unusable unless skipped."""
    adapter = get_adapter(dataset)
    opts = {"mask_suffix": mask_suffix} if mask_suffix is not None else {}
    found = adapter.discover(Path(root), **opts)
    rep = Report()
    rep.lines.append(f"{adapter.title} ({dataset}) at {found.root}")
    ignored = Counter(p.suffix.lower() or p.name for p in found.ignored)
    ignored_text = ", ".join(f"{n} {k}" for k, n in sorted(ignored.items())) or "nothing"
    rep.lines.append(f"pairs found: {len(found.pairs)}; ignored (not images to segment): {ignored_text}")
    (rep.warnings if skip_bad else rep.problems).extend(found.problems)

    facts = scan(found.pairs, workers) if found.pairs else []
    bad = [f.error for f in facts if f.error]
    (rep.warnings if skip_bad else rep.problems).extend(bad)
    good = [f for f in facts if not f.error]
    rep.lines.append(f"readable pairs: {len(good)} of {len(facts)}")
    if not good:
        rep.problems.append(f"{found.root}: no usable image/mask pairs")
        return rep, None

    rep.lines.append(f"image sizes: {_range(good)}")
    values = Counter(f.mask_values for f in good)
    rep.lines.append("mask values (before binarising): " + "; ".join(
        f"{v} in {n}" for v, n in values.most_common(6)) + " -> all binary 0/1 after reading")  # fmt: skip
    fg = [f.foreground for f in good]
    empty = sum(1 for v in fg if v == 0)
    rep.lines.append(f"foreground fraction: mean {sum(fg) / len(fg):.3f}, min {min(fg):.3f}, "
                     f"max {max(fg):.3f}; empty masks: {empty} (allowed)")  # fmt: skip

    # Split every discovered pair, as train and pretrain do: an unreadable pair drops out of its
    # part and moves no other case, so --split-out gives the same parts as a run would use.
    split = build_split(dataset, found, split_name or adapter.default_split, seed)
    parts = split.parts()
    carved = any(n.startswith("val: a seeded") for n in split.notes)
    text = f"split {split.name} (seed {split.seed}): "
    if carved:
        text += (f"train {len(parts['train']) + len(parts['val'])} pairs, of which a seeded 10% "
                 f"({len(parts['val'])}) is validation, so train {len(parts['train'])} / ")  # fmt: skip
    else:
        text += f"train {len(parts['train'])} / "
    text += f"val {len(parts['val'])} / test {len(parts['test'])}"
    rep.lines.append(text)
    rep.lines += [f"  note: {n}" for n in split.notes]
    if bad:
        rep.lines.append(f"  note: the {len(bad)} unreadable pair(s) keep their place in these lists, so that the "
                         "parts are a run's; a run with --skip-bad leaves them out")  # fmt: skip
    rep.problems += check_overlap(split)
    _check_parts(rep, split, {f.id for f in good})
    hashes = {f.id: f.pixel_hash for f in good}
    dupes = cross_part_duplicates(split, hashes)
    within = sum(n - 1 for n in Counter(hashes.values()).values() if n > 1)
    rep.warnings += dupes
    rep.lines.append(f"duplicates: {len(dupes)} groups across parts, {within} exact copies in all")
    return rep, split


def _check_parts(rep: Report, split: Split, readable: set[str]) -> None:
    """The verdict ``train`` would give: it needs readable training and validation cases; without a
    test part a model gets no honest test score."""
    counts = {part: sum(1 for i in ids if i in readable) for part, ids in split.parts().items()}
    for part in ("train", "val"):
        if counts[part] == 0:
            rep.problems.append(f"split {split.name}: no readable {part} cases, so train would refuse it; give a "
                                "data root with training images, or another --split")  # fmt: skip
    if counts["test"] == 0:
        rep.warnings.append(f"split {split.name}: no test cases, so a model trained on it gets no honest test "
                            "score; a split with one: paper, kfold:5/1 or seeded")  # fmt: skip


def format_report(rep: Report) -> str:
    out = list(rep.lines)
    out += [f"warning: {w}" for w in rep.warnings]
    out += [f"problem: {p}" for p in rep.problems]
    out.append("OK: the data can be used" if rep.usable else
               f"NOT USABLE: {len(rep.problems)} problem(s) above; fix them or pass --skip-bad")  # fmt: skip
    return "\n".join(out)
