"""Issue 15's side-by-side: NExNet Seg and UNet in one process, training images/s and batch-1 latency.

    PYTHONPATH=src python benchmarks/gpu_speed.py [--device cuda] [--image-size 224] [--batches 16,64]
        [--steps 5] [--rounds 5] [--compile-timeout 150] [--json FILE]

Training: forward, Dice+BCE loss, backward, clipping and Adam, as ``bench_train.py`` (bf16 autocast,
channels_last as ``nexnet`` places the models). Inference at batch 1: the network's probabilities
eager, replayed from a captured CUDA graph (``nexnet.inference.graphs``), and through
``torch.compile(mode="reduce-overhead")`` in a child process under a time limit; then
``Predictor.probabilities`` (uint8 image in, numpy out) with and without graphs. Medians after warm-up,
the models taking turns each round. On CPU the graph and compile rows are left out (toy runs, tests).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_train import make_step
from common import alternating_medians, apply_runtime, autocast, build, describe, synchronizer

from nexnet.inference.graphs import GraphedForward
from nexnet.inference.predictor import Predictor

Row = dict[str, float | None]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a toy run")
    p.add_argument("--models", default="nexnet_seg,unet",
                   help="two or more registry names, the last the reference for the ratios; NAME:KEY=VALUE\n"
                        "sets a keyword, e.g. nexnet_seg,nexnet_seg:form=revised,unet\n"
                        "(default nexnet_seg,unet)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=224, help="square input (default 224)")
    p.add_argument("--batches", default="16,64", help="training batch sizes (default 16,64)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per round (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, the models taking turns (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps or calls first (default 3)")
    p.add_argument("--latency-repeats", type=int, default=30, help="timed batch-1 calls per round (default 30)")
    p.add_argument("--fp32", action="store_true", help="float32 instead of bf16 autocast")
    p.add_argument("--compile-timeout", type=float, default=None,
                   help="seconds for the torch.compile rows, both models (default 150 on CUDA, 0: skip)")  # fmt: skip
    p.add_argument("--compile-child", default=None, help=argparse.SUPPRESS)  # one model, in a child process
    p.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    args = p.parse_args(argv)
    args.amp, args.default_layout, args.compile, args.system_malloc = not args.fp32, False, False, False
    args.names = [n.strip() for n in re.split(r",(?![^\[]*\])", args.models) if n.strip()]  # not inside [...]
    if args.compile_timeout is None:
        args.compile_timeout = 150.0 if args.device.startswith("cuda") else 0.0
    return args


def training_rows(models: dict[str, torch.nn.Module], dev: torch.device, args: argparse.Namespace) -> dict[str, Row]:
    """Images/s per model at each batch size; batch sizes run one after the other to bound memory."""
    rows: dict[str, Row] = {}
    s = args.image_size
    for batch in [int(b) for b in args.batches.split(",")]:
        x = torch.rand(batch, 3, s, s, device=dev)
        y = (torch.rand(batch, 1, s, s, device=dev) > 0.8).float()
        steps = {n: make_step(m.train(), x, y, args.amp) for n, m in models.items()}
        for step in steps.values():
            for _ in range(args.warmup):
                step()  # optimizer state, cuDNN algorithms, decay masks
        med = alternating_medians(steps, args.rounds, args.steps)
        rows[f"training, batch {batch}, images/s"] = {n: batch / t for n, t in med.items()}
        del steps, x, y
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _timed_capture(pred: Predictor, x: torch.Tensor) -> tuple[GraphedForward, float]:
    t = time.perf_counter()
    graph = GraphedForward(pred.eager_forward, x, pred.amp)
    torch.cuda.synchronize(x.device)
    return graph, time.perf_counter() - t


def latency_rows(models: dict[str, torch.nn.Module], dev: torch.device, args: argparse.Namespace) -> dict[str, Row]:
    """Batch-1 milliseconds per model: the forward eager and graphed, and ``Predictor.probabilities``."""
    s, sync, amp = args.image_size, synchronizer(dev), torch.bfloat16 if args.amp else None
    x = torch.rand(1, s, s, 3, device=dev).permute(0, 3, 1, 2)  # channels_last, as Predictor feeds the network
    image = np.random.default_rng(0).integers(0, 256, (1, s, s, 3), dtype=np.uint8)
    fns: dict[tuple[str, str], Callable[[], object]] = {}
    capture_s: Row = {}
    for name, model in models.items():
        eager, graphed = (Predictor(model.eval(), s, dev, amp=amp, graphs=g) for g in (False, True))
        fns[name, "forward, eager"] = lambda p=eager: (p.eager_forward(x), sync())
        fns[name, "Predictor.probabilities, eager"] = lambda p=eager: p.probabilities(image, 1)
        if dev.type == "cuda":
            graph, capture_s[name] = _timed_capture(graphed, x)
            fns[name, "forward, CUDA graph"] = lambda g=graph: (g(x), sync())
            fns[name, "Predictor.probabilities, graphs"] = lambda p=graphed: p.probabilities(image, 1)
    with torch.no_grad(), autocast(dev, args.amp):  # one region, as Predictor.probabilities holds one
        for fn in fns.values():
            for _ in range(args.warmup):
                fn()
        med = alternating_medians(fns, args.rounds, args.latency_repeats)  # type: ignore[arg-type]
    rows: dict[str, Row] = {}
    for (name, what), t in med.items():
        rows.setdefault(f"batch 1, {what}, ms", {})[name] = t * 1e3
    if capture_s:
        rows["batch 1, CUDA graph warm-up + capture, s"] = capture_s
    return rows


def check_graphs(models: dict[str, torch.nn.Module], dev: torch.device, args: argparse.Namespace) -> None:
    """Graph against eager on the same 3 images (batches of 2 and 1): largest probability difference and
    mask pixels that differ at threshold 0.5. The correctness side of the latency rows."""
    s, amp = args.image_size, torch.bfloat16 if args.amp else None
    images = np.random.default_rng(1).integers(0, 256, (3, s, s, 3), dtype=np.uint8)
    for name, model in models.items():
        eager, graphed = (Predictor(model.eval(), s, dev, amp=amp, graphs=g) for g in (False, True))
        a, b = eager.probabilities(images, 2), graphed.probabilities(images, 2)
        differ = int(((a > 0.5) != (b > 0.5)).sum())
        print(f"graph vs eager, {name}: max |p_graph - p_eager| {np.abs(a - b).max():.2e}, "
              f"{differ} of {a.size} mask pixels differ, {len(graphed._graphed)} graphs", flush=True)  # fmt: skip


def compile_child(args: argparse.Namespace) -> None:
    """One model's batch-1 latency through torch.compile(mode="reduce-overhead"); prints one JSON line."""
    dev = torch.device(args.device)
    model = build(args.compile_child, dev, args).eval()
    s, amp = args.image_size, torch.bfloat16 if args.amp else None
    pred = Predictor(model, s, dev, amp=amp, graphs=False)
    fn = torch.compile(pred.eager_forward, mode="reduce-overhead")
    x = torch.rand(1, s, s, 3, device=dev).permute(0, 3, 1, 2)
    sync = synchronizer(dev)

    def call() -> None:
        torch.compiler.cudagraph_mark_step_begin()  # each call a new step: its outputs may be overwritten
        fn(x)
        sync()

    with torch.no_grad(), autocast(dev, args.amp):
        pred.eager_forward(x)  # fills MaSA's decay-mask cache eagerly: made inside a cudagraph it gets overwritten
        t = time.perf_counter()
        call()
        first = time.perf_counter() - t
        for _ in range(args.warmup):
            call()  # cudagraph trees record on the first calls after compiling
        med = alternating_medians({"c": call}, args.rounds, args.latency_repeats)["c"]
    print(json.dumps({"ms": med * 1e3, "compile_s": first}))


def compile_rows(args: argparse.Namespace) -> dict[str, Row]:
    """The compile rows, one child process per model, all within ``--compile-timeout`` seconds."""
    ms: Row = {}
    first: Row = {}
    deadline = time.monotonic() + args.compile_timeout
    for name in args.names:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--compile-child", name]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"torch.compile {name}: over the {args.compile_timeout:.0f} s limit, left out", flush=True)
            ms[name] = first[name] = None
            continue
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"torch.compile {name}: failed: {last}", flush=True)
            ms[name] = first[name] = None
            continue
        out = json.loads(r.stdout.strip().splitlines()[-1])
        ms[name], first[name] = out["ms"], out["compile_s"]
    return {"batch 1, forward, torch.compile reduce-overhead, ms": ms,
            "batch 1, torch.compile first call (compiling), s": first}  # fmt: skip


def progress(rows: dict[str, Row]) -> dict[str, Row]:
    """Print rows as they are measured, so that a run cut short still shows them."""
    for what, row in rows.items():
        print(f"  {what}: " + ", ".join(f"{n} {'-' if v is None else f'{v:.3f}'}" for n, v in row.items()), flush=True)
    return rows


def format_table(rows: dict[str, Row], names: list[str]) -> str:
    """Markdown: one row per measurement, the models side by side and each one's ratio to the last."""
    *others, ref = names
    head = [*names, *(f"{a} / {ref}" for a in others)]
    out = ["| | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for what, row in rows.items():
        cell = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        ratios = []
        for a in others:  # no ratios of setup times
            va, vr = row.get(a), row.get(ref)
            ratios.append(f"{va / vr:.2f}" if va is not None and vr and not what.endswith(", s") else "-")
        out.append(f"| {what} | " + " | ".join([*(cell(row.get(n)) for n in names), *ratios]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.compile_child:
        return compile_child(args)
    if len(args.names) < 2 or len(set(args.names)) != len(args.names):
        raise SystemExit("gpu_speed.py: --models takes two or more different models, e.g. nexnet_seg,unet")
    dev = apply_runtime(args)
    print(f"{describe(args, dev)}; {args.image_size}px", flush=True)
    models = {n: build(n, dev, args) for n in args.names}
    rows = progress(training_rows(models, dev, args))
    rows.update(progress(latency_rows(models, dev, args)))
    if dev.type == "cuda":
        check_graphs(models, dev, args)
    del models
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    if args.compile_timeout > 0:
        rows.update(progress(compile_rows(args)))
    print(f"medians of {args.rounds} rounds ({args.steps} training steps, {args.latency_repeats} batch-1 calls "
          f"each) after {args.warmup} warm-up; ratios to {args.names[-1]}")  # fmt: skip
    print(format_table(rows, args.names))
    if args.json:
        Path(args.json).write_text(json.dumps({"describe": describe(args, dev), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
