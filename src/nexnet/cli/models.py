"""``nexnet models``: the registered model names."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    m = sub.add_parser("models", help="list registered model names",
                       description="List the registered model names, for --model; change a model's settings "
                       "with --set model.KEY=VALUE (a misspelt key names the closest one).")  # fmt: skip
    m.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'segformer*'")
    return m


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    for name in list_models(args.pattern):
        note = "  (the SSL pretraining model: nexnet pretrain; not for train)" if name == "ssl_autoencoder" else ""
        print(f"{name}{note}")
    return 0
