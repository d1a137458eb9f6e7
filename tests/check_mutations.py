"""Apply each mutation that would move a choice onto held-out images, run the tests, and say
whether some test failed (it must). Not collected by pytest; run it by hand:

    python tests/check_mutations.py [-k NAME] [--tests tests/test_leaks.py]

Each mutation is made in a copy of ``src/`` under a temporary folder; the working tree is untouched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/nexnet"

# name -> (file, pattern, replacement): the mutations issue 27 lists.
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "selection on test": ("training/trainer.py", r'data\.rows\("train"\), data\.rows\("val"\)',
                          'data.rows("train"), data.rows("test")'),
    "pos_weight from all masks": ("training/trainer.py", r"data\.arrays\.masks\[np\.sort\(train_rows\)\]",
                                  "data.arrays.masks"),
    "threshold val chosen on test": ("evaluation/evaluator.py", r'_pick_threshold\(chunks\("val"\)',
                                     '_pick_threshold(chunks("test")'),
    "pixel check without val hashes": ("evaluation/scored_cases.py",
                                       r'seen_for = set\(seen\["train"\]\) \| \(set\(\) if subset == "val" else '
                                       r'set\(seen\["val"\]\)\)', 'seen_for = set(seen["train"])'),
    "50% bootstrap interval": ("evaluation/metrics.py", r"seed: int = 0, level: float = 0\.95\) -> tuple",
                               "seed: int = 0, level: float = 0.5) -> tuple"),
    "authors' protocol per image": ("evaluation/metrics.py", r"range\(0, len\(probs\), batch_size\)",
                                    "range(0, len(probs), 1)"),
    "atomic_directory in place": ("io.py", r"    tmp = Path\(tempfile\.mkdtemp.*?shutil\.rmtree\(old, ignore_errors=True\)\n",
                                  "    path.mkdir(exist_ok=True)\n    yield path\n"),
    "pickle sniffing off": ("models/base.py", r'return head\[:1\] == b"\\x80" or head\[:2\] == b"PK"', "return False"),
}  # fmt: skip


def mutated_tree(name: str) -> Path:
    """A copy of src/ with mutation ``name`` applied (refused if its pattern no longer matches once)."""
    file, pattern, replacement = MUTATIONS[name]
    tree = Path(tempfile.mkdtemp(prefix="mutant-"))
    shutil.copytree(ROOT / "src", tree / "src")
    target = tree / PKG / file
    text, count = re.subn(pattern, replacement, target.read_text(), count=1, flags=re.S)
    if count != 1:
        raise SystemExit(f"mutation {name!r}: its pattern no longer matches {PKG}/{file}; update it")
    target.write_text(text)
    return tree


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-k", default=None, help="only mutations whose name contains this")
    p.add_argument("--tests", nargs="+", default=["tests/test_leaks.py"])
    args = p.parse_args()
    survivors = []
    for name in MUTATIONS:
        if args.k and args.k not in name:
            continue
        tree = mutated_tree(name)
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args.tests],
                              cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
        shutil.rmtree(tree, ignore_errors=True)
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        verdict = f"caught by {failed[0].split()[1]}" if done.returncode else "SURVIVED: no test failed"
        print(f"{name:<34} {verdict}", flush=True)
        if not done.returncode:
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
