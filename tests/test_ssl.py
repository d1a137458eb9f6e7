"""SSL pretraining, its fusion into NExNet Seg, and the ablation configs."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import nexnet
import nexnet.data.cache as cache_module
from nexnet.data import build_split, get_adapter
from nexnet.errors import NexnetError
from nexnet.models import TPEN, ManhattanSelfAttention
from nexnet.synthetic import make_synthetic_dataset
from nexnet.training.config import resolve
from nexnet.training.pretrainer import PRETRAIN_DEFAULTS, pretrain
from nexnet.training.recon_losses import ReconstructionLoss, VGG16Features, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n=20, size_range=(40, 56))


def test_autoencoder_loss_falls_over_a_few_steps():
    torch.manual_seed(0)
    model = nexnet.create_model("ssl_autoencoder", widths=[8, 8, 16, 16, 16, 32])
    clean = torch.rand(4, 3, 32, 32) * 0.5 + 0.25
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    loss_fn = ReconstructionLoss()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(15):
        loss = loss_fn(model(noisy), clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_ssim_agrees_with_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.image")
    torch.manual_seed(0)
    x = torch.rand(3, 3, 40, 48)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    ours = ssim(x, y)
    theirs = torch.stack([tm.structural_similarity_index_measure(x[i : i + 1], y[i : i + 1], data_range=1.0)
                          for i in range(3)])  # fmt: skip
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert torch.allclose(ssim(x, x), torch.ones(3))
    assert psnr(x, x + 0.1).allclose(torch.full((3,), 20.0), atol=1e-3)


def test_fused_model_shapes_and_parameter_split():
    model = nexnet.create_model("nexnet_seg_s", ssl=True, widths=[4, 4, 8, 8, 8, 8])
    assert model(torch.rand(2, 3, 64, 96)).shape == (2, 1, 64, 96)
    assert model.ssl_encoder(torch.rand(1, 3, 64, 96)).shape == (1, 1024, 2, 3)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_encoder_keeps_weights_bit_identical(freeze):
    torch.manual_seed(0)
    model = nexnet.create_model("nexnet_seg_s", ssl=True, freeze_ssl=freeze, widths=[4, 4, 8, 8, 8, 8])
    before = {k: v.clone() for k, v in model.ssl_encoder.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    model.train()
    model(torch.rand(2, 3, 64, 64)).mean().backward()
    opt.step()
    after = model.ssl_encoder.state_dict()
    same = all(torch.equal(before[k], after[k]) for k in before)
    assert same is freeze


def test_pretraining_never_reads_validation_or_test_images(data, tmp_path, monkeypatch):
    read = []
    original = cache_module.read_image
    monkeypatch.setattr(cache_module, "read_image", lambda p: read.append(Path(p)) or original(p))
    cfg = {**PRETRAIN_DEFAULTS, "datasets": ["folder"], "data_roots": [str(data)], "split": "seeded",
           "split_seed": 2, "image_size": 32, "epochs": 1, "batch_size": 4, "workers": 1}  # fmt: skip
    pretrain(cfg, tmp_path / "pt", quiet=True)
    found = get_adapter("folder").discover(data)
    split = build_split("folder", found, "seeded", 2)  # the split seed, not the training seed (0)
    assert split.train != build_split("folder", found, "seeded", 0).train
    by_id = {p.id: p.image for p in found.pairs}
    held = {by_id[i] for i in split.val + split.test}
    assert read and not held & set(read)
    assert {p.name for p in read} == {by_id[i].name for i in split.train}
    for name in ("best", "last", "log.csv", "curves.png", "recon.png", "images.json"):
        assert (tmp_path / "pt" / name).exists()


def test_perceptual_term_with_local_vgg_weights(tmp_path):
    vgg = VGG16Features()
    state = {k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}
    save_file(state, tmp_path / "vgg16.safetensors")
    loaded = VGG16Features.from_file(tmp_path / "vgg16.safetensors")
    with_perc = ReconstructionLoss(loaded)
    assert with_perc.w_perc == 0.1 and with_perc.w_mse == 0.7
    x = torch.rand(1, 3, 32, 32)
    assert with_perc(x, x).item() == pytest.approx(0.0, abs=1e-5)
    without = ReconstructionLoss()
    assert without.w_mse == pytest.approx(0.7 / 0.9) and without.w_perc == 0
    save_file({"other.weight": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(NexnetError, match="not a VGG16 state dict"):
        VGG16Features.from_file(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("name, tpen, masa, ssl", [
    ("baseline", False, False, False), ("no_ssl_no_masa", True, False, False), ("no_ssl", True, True, False),
    ("no_masa", True, False, True), ("full", True, True, True),
])  # fmt: skip
def test_ablation_configs_build_the_variants(name, tpen, masa, ssl):
    cfg = resolve(ROOT / "configs" / "ablation" / f"{name}.yaml")
    model = nexnet.create_model(cfg.model_name, **cfg.model_kwargs())
    kinds = {type(m) for m in model.modules()}
    assert (ManhattanSelfAttention in kinds) is masa
    assert (model.ssl_encoder is not None) is ssl
    assert all(isinstance(t.coefficients, torch.nn.Parameter) is tpen for t in model.modules() if isinstance(t, TPEN))


def test_ssl_checkpoint_must_be_an_autoencoder(data, tmp_path):
    from nexnet.models import load_ssl_encoder
    from nexnet.training.ssl_checkpoint import check_ssl_ids

    seg = nexnet.create_model("nexnet_seg_s", widths=[4, 4, 8, 8, 8, 8])
    seg.save_pretrained(tmp_path / "seg")
    split = build_split("folder", get_adapter("folder").discover(data), "seeded", 0)
    with pytest.raises(NexnetError, match="holds a nexnet_seg_s, not an ssl_autoencoder"):
        check_ssl_ids(tmp_path / "seg", split)
    with pytest.raises(NexnetError, match="holds a nexnet_seg_s, not an ssl_autoencoder"):
        load_ssl_encoder(nexnet.create_model("nexnet_seg_s", ssl=True), tmp_path / "seg")
    nexnet.create_model("ssl_autoencoder", widths=[4, 4, 8, 8, 8, 8]).save_pretrained(tmp_path / "ae")
    with pytest.raises(NexnetError, match="needs a model built with ssl=True"):
        load_ssl_encoder(nexnet.create_model("nexnet_seg_s"), tmp_path / "ae")
