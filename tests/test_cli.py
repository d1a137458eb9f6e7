import json
import subprocess
import sys

import pytest

from nexnet.cli import main


def test_profile_prints_params_and_macs(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["profile", "--models", "nexnet_seg_s", "--image-size", "64",
                 "--repeats", "2", "--warmup", "1", "--json", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "nexnet_seg_s" in text and "threads" in text and "GMACs" in text
    row = json.loads(out.read_text())[0]
    assert row["images_per_s"] > 0 and row["throughput_batch"] == 16
    assert row["params"] > 4_000_000 and row["gflops"] == pytest.approx(2 * row["gmacs"])
    assert row["median_s"] > 0


def test_profile_under_bf16_autocast_times_in_bf16(tmp_path, capsys, monkeypatch):
    from torch import nn

    seen = []
    real_forward = nn.Conv2d.forward
    monkeypatch.setattr(nn.Conv2d, "forward", lambda self, x: seen.append(r := real_forward(self, x)) or r)
    out = tmp_path / "p.json"
    assert main(["profile", "--models", "unet", "--image-size", "32", "--repeats", "1", "--warmup", "0",
                 "--throughput-batch", "0", "--amp", "--json", str(out)]) == 0  # fmt: skip
    row = json.loads(out.read_text())[0]
    assert row["precision"] == "bfloat16 autocast" and "bfloat16 autocast" in capsys.readouterr().out
    assert str(seen[0].dtype) == "torch.float32"  # the FLOP count, first, does not depend on --amp
    assert str(seen[-1].dtype) == "torch.bfloat16"  # the timed pass


def test_profile_set_builds_each_model_with_those_keywords(tmp_path, capsys):
    from nexnet.models.masa import ManhattanSelfAttention

    rows = {}
    for form in ("lean", "paper"):
        out = tmp_path / f"{form}.json"
        assert main(["profile", "--models", "nexnet_seg_s", "--image-size", "64", "--no-latency",
                     "--set", f"model.form={form}", "--json", str(out)]) == 0  # fmt: skip
        rows[form] = json.loads(out.read_text())[0]
    assert "form=paper" in capsys.readouterr().out
    # the paper form attends at levels 1 and 2 (16 and 32 channels in nexnet_seg_s) too
    level_1_2 = sum(p.numel() for c in (16, 32) for p in ManhattanSelfAttention(c).parameters())
    assert rows["paper"]["params"] - rows["lean"]["params"] == level_1_2
    assert rows["paper"]["gmacs"] > rows["lean"]["gmacs"]
    assert main(["profile", "--set", "train.lr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nexnet profile: error: --set train.*: profile takes model keys only, e.g. --set model.form=paper"
    assert main(["profile", "--set", "model.name=unet"]) == 2
    assert "--set model.name: name the models with --models" in capsys.readouterr().err


def test_unknown_model_is_one_line(capsys):
    assert main(["profile", "--models", "unet9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nexnet profile: error: unknown model 'unet9'") and "\n" not in err


def test_help_of_every_verb():
    from nexnet.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    verbs = list(sub.choices)
    assert {"train", "evaluate", "predict", "score", "check-data", "pretrain", "export", "reproduce"} <= set(verbs)
    for verb in verbs:
        with pytest.raises(SystemExit) as e:
            main([verb, "--help"])
        assert e.value.code == 0


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "nexnet", "models"], capture_output=True, text=True)
    assert r.returncode == 0 and "nexnet_seg" in r.stdout.split()


def test_every_verb_says_what_it_does_in_its_help():
    import argparse

    from nexnet.cli import build_parser

    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [name for name, parser in verbs.choices.items() if not parser.description]
    assert not missing, f"verbs without a description in --help: {missing}"
