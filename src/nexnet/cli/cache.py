"""``nexnet cache``: where decoded images are cached; ``--clear`` removes them."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    ca = sub.add_parser("cache", help="where decoded images are cached, and how much; --clear removes them",
                        description="Each dataset is decoded and resized once into ~/.cache/nexnet-seg "
                        "(NEXNET_CACHE_DIR moves it); about 200 MB for Kvasir-SEG at 224 px.")  # fmt: skip
    ca.add_argument("--clear", action="store_true", help="delete the cache; it is rebuilt when next needed")
    return ca


def run(args: argparse.Namespace) -> int:
    from ..data.cache import cache_root, cache_size, clear_cache

    if args.clear:
        print(f"removed the decode cache in {cache_root()}: {clear_cache() / 2**20:.1f} MiB freed")
    else:
        print(f"decode cache: {cache_root()} ({cache_size() / 2**20:.1f} MiB; set NEXNET_CACHE_DIR to move it)")
    return 0
