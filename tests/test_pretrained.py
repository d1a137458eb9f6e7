import json
import pickle

import pytest
import torch

import nexnet
from nexnet.models import NExNetSeg


def test_save_and_load_round_trip_to_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = nexnet.create_model("nexnet_seg_s", gamma="rmt", order=2)
    model(torch.randn(2, 3, 64, 64))  # move BN running statistics away from their defaults
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = NExNetSeg.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == model.config and loaded.model_name == "nexnet_seg_s"
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary folders left behind


def test_saving_again_replaces_the_folder(tmp_path):
    a = nexnet.create_model("nexnet_seg_s")
    a.save_pretrained(tmp_path / "ckpt")
    b = nexnet.create_model("nexnet_seg_s", num_classes=2)
    b.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt/config.json").read_text())["config"]["num_classes"] == 2


def test_pickle_checkpoints_are_refused(tmp_path):
    model = nexnet.create_model("nexnet_seg_s")
    pt = tmp_path / "model.pth"
    torch.save(model.state_dict(), pt)
    with pytest.raises(nexnet.NexnetError, match="is a pickle file; nexnet never unpickles"):
        nexnet.from_pretrained(pt)
    raw = tmp_path / "weights"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(nexnet.NexnetError, match="pickle"):
        nexnet.from_pretrained(raw)


def test_bad_checkpoint_folders(tmp_path):
    with pytest.raises(nexnet.NexnetError, match="does not exist"):
        nexnet.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(nexnet.NexnetError, match="not a checkpoint folder"):
        nexnet.from_pretrained(tmp_path / "empty")
    model = nexnet.create_model("nexnet_seg_s")
    model.save_pretrained(tmp_path / "ckpt")
    cfg = tmp_path / "ckpt/config.json"
    cfg.write_text(cfg.read_text().replace('"num_classes": 1', '"num_classes": 4'))
    with pytest.raises(nexnet.NexnetError, match="does not match nexnet_seg_s"):
        nexnet.from_pretrained(tmp_path / "ckpt")
    cfg.write_text("{not json")
    with pytest.raises(nexnet.NexnetError, match="not valid JSON"):
        nexnet.from_pretrained(tmp_path / "ckpt")
