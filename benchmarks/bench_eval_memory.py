"""Peak memory of ``nexnet evaluate`` against the number of cases: it should stay flat.

    python benchmarks/bench_eval_memory.py [--cases 8,32] [--side 1500]

Each count gets a synthetic folder of that many pairs at about ``side`` x ``side`` px (ISIC-like
originals) and is scored, with ``--subset all`` and an untrained ``nexnet_seg_s`` at 64 px, in its
own process, whose peak resident memory (``ru_maxrss``) is printed. Evaluation holds one case at
original size at a time, so the peak should not grow with the cases (decoding for the cache does
one image at a time too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys
from nexnet.evaluation import evaluate
s = evaluate(sys.argv[1], "folder", sys.argv[2], subset="all", device="cpu", say=lambda m: None)
print(json.dumps({"cases": s["cases"], "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _checkpoint(folder: Path) -> Path:
    import nexnet

    model = nexnet.create_model("nexnet_seg_s")
    return model.save_pretrained(folder / "model", extra={"image_size": 64})


def _dataset(folder: Path, n: int, side: int) -> Path:
    from nexnet.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(folder / f"data{n}", n=n, seed=n, size_range=(side, side + side // 10))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default="8,32", help="comma-separated case counts")
    p.add_argument("--side", type=int, default=1500, help="image side in px (default 1500)")
    args = p.parse_args()
    counts = [int(c) for c in args.cases.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = _checkpoint(root)
        print(f"evaluate --subset all, nexnet_seg_s untrained at 64 px, images about {args.side} px square")
        print(f"{'cases':>6} {'peak MiB':>10}")
        for n in counts:
            data = _dataset(root, n, args.side)
            env = {**os.environ, "NEXNET_CACHE_DIR": str(root / "cache"), "NEXNET_QUIET": "1"}
            done = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), str(data)], capture_output=True, text=True,
                                  env=env)  # fmt: skip
            if done.returncode:
                raise SystemExit(done.stderr.strip().splitlines()[-1])
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{result['cases']:>6} {result['peak_mib']:>10.0f}")


if __name__ == "__main__":
    main()
