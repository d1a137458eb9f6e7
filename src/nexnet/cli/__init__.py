"""The ``nexnet`` command line: one verb per step, one module per verb.

Each verb module has ``add(sub)``, which declares its parser, and ``run(args)``, which does the work
through the library and returns the exit code; shared flags live in ``flags``. A new verb is one
module here plus its name in ``VERBS``. Verb modules import lazily, so ``nexnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import NexnetError
from . import (
    cache,
    check_data,
    datasets,
    demo,
    evaluate,
    export,
    frontier,
    models,
    predict,
    pretrain,
    profile,
    reproduce,
    score,
    serve,
    train,
)
from .flags import DefaultsFormatter, add_threads_flag

VERBS = (demo, models, profile, datasets, cache, check_data, train, pretrain, evaluate, predict, reproduce,
         frontier, export, score, serve)  # fmt: skip


# --threads N for this process
THREADED = ("train", "pretrain", "evaluate", "predict", "serve", "export", "reproduce", "demo")


class VerbParser(argparse.ArgumentParser):
    """A verb's parser that keeps the required flags added to it (argparse has no public list of
    them), so that ``refuse_unknown_flags`` can parse without them. Flags added through a group
    are not kept: add required ones to the parser itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.required_actions: list[argparse.Action] = []

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.required:
            self.required_actions.append(action)
        return action


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="nexnet",
        description="NExNet Seg and baselines for medical image segmentation.",
        epilog="Run 'nexnet VERB --help' for the flags of one step.",
    )
    parser.add_argument("--version", action="version", version=f"nexnet-seg {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=VerbParser)
    sub.required = True
    for verb in VERBS:
        p = verb.add(sub)
        p.set_defaults(func=verb.run, verb_parser=p)
        if p.prog.split()[-1] in THREADED:
            add_threads_flag(p)
        p.formatter_class = DefaultsFormatter
    parser.verb_parsers = sub.choices  # type: ignore[attr-defined]  # for refuse_unknown_flags
    return parser


def refuse_unknown_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Name an unknown flag in the verb's own usage, before argparse would stop at a missing
    required one (``nexnet train --bogus`` must say ``--bogus``, not ``--out``)."""
    verb_parsers = parser.verb_parsers  # type: ignore[attr-defined]
    # the verb is the first word that names one: the top level has no option that takes a value
    at = next((i for i, a in enumerate(argv) if a in verb_parsers), None)
    if at is None or {"-h", "--help"} & set(argv[at + 1 :]):  # --help prints the usage as it is
        return
    verb = verb_parsers[argv[at]]
    required = [a for a in verb.required_actions if a.required]
    for action in required:
        action.required = False
    try:
        _, unknown = verb.parse_known_args(argv[at + 1 :])
    finally:
        for action in required:
            action.required = True
    if unknown:
        verb.error(f"unrecognized arguments: {' '.join(unknown)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    refuse_unknown_flags(parser, argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the verb's own usage and --help, not the top level's
        args.verb_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    from ..runtime import keep_freed_memory

    keep_freed_memory()  # one process per command: reuse freed activations instead of faulting them in
    if args.verb in THREADED:
        from .flags import set_threads

        try:
            set_threads(args.threads)
        except NexnetError as e:
            print(f"nexnet {args.verb}: error: {e}", file=sys.stderr)
            return 2
    quiet = getattr(args, "quiet", False)
    before = os.environ.get("NEXNET_QUIET")
    if quiet:
        os.environ["NEXNET_QUIET"] = "1"  # every progress bar, the decoding bars inside the data layer too
    try:
        return int(args.func(args) or 0)
    except NexnetError as e:
        print(f"nexnet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nexnet {args.verb}: interrupted{_how_to_continue(args)}", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as e:
        fix = _how_to_fix(e, args)
        if fix is None:
            raise
        print(f"nexnet {args.verb}: error: {e}: {fix}{_how_to_continue(args)}", file=sys.stderr)
        return 2
    finally:
        if quiet and before is None:
            os.environ.pop("NEXNET_QUIET", None)


# What the machine refused, not what nexnet got wrong: one line with the fix. Any other OSError is a
# defect and keeps its traceback. {flag} names the option that gave the path, where one did.
_ENVIRONMENT_FIXES = {
    errno.EACCES: "choose a path{flag} you may write or read, or change its permissions",
    errno.EPERM: "choose a path{flag} you may write or read, or change its permissions",
    errno.EROFS: "that file system is read-only: choose a path{flag} on a writable one",
    errno.ENOSPC: "the disk is full: free space or choose a path{flag} on another disk",
    errno.EDQUOT: "your disk quota is used up: free space or choose a path{flag} on another disk",
}


def _how_to_fix(e: BaseException, args: argparse.Namespace) -> str | None:
    """The fix for an error the machine raised (a loop, a refusal, a full disk), or None."""
    if _is_symlink_loop(e):
        return "a symbolic link in that path points back at itself; fix or remove the link"
    if not isinstance(e, OSError) or e.errno not in _ENVIRONMENT_FIXES:
        return None
    flag = _flag_for(args, e.filename)
    return _ENVIRONMENT_FIXES[e.errno].format(flag=f" for {flag}" if flag else "")


def _flag_for(args: argparse.Namespace, filename: object) -> str | None:
    """The option whose path holds ``filename`` (the deepest, if several do), e.g. ``--split-out``."""
    if not isinstance(filename, (str, os.PathLike)):
        return None
    name, best, flag = os.path.abspath(filename), "", None
    for dest, value in vars(args).items():
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            continue
        given = os.path.abspath(value)
        if _inside(name, given) and len(given) > len(best):
            best, flag = given, _option_of(args, dest)
    if flag is None and _inside(name, os.path.abspath(_cache_root())):
        return "NEXNET_CACHE_DIR"  # the decode cache: that variable moves it
    return flag


def _inside(name: str, folder: str) -> bool:
    return name == folder or name.startswith(folder.rstrip(os.sep) + os.sep)


def _cache_root() -> Path:
    from ..data.cache import cache_root

    return cache_root()


def _option_of(args: argparse.Namespace, dest: str) -> str:
    """How the verb spells the option that fills ``dest`` (``split_out`` -> ``--split-out``)."""
    for action in getattr(args, "verb_parser", argparse.ArgumentParser())._actions:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return "--" + dest.replace("_", "-")


def _is_symlink_loop(e: BaseException) -> bool:
    """Python 3.11's ``Path.resolve()`` raises RuntimeError on a link that points back at itself;
    later Pythons resolve it and the first open or mkdir through it fails with ELOOP."""
    if isinstance(e, OSError):
        return e.errno == errno.ELOOP
    return str(e).startswith("Symlink loop")


def _how_to_continue(args: argparse.Namespace) -> str:
    """What continues an interrupted long command: every epoch and finished run is kept."""
    out = getattr(args, "out", None)
    if args.verb in ("train", "pretrain") and out:
        return f"; nothing finished is lost: continue with nexnet {args.verb} --out {out} --resume"
    if args.verb in ("frontier", "reproduce"):
        return "; run the same command again: finished runs are skipped, an interrupted one resumes"
    return ""
