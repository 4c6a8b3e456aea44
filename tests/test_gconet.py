"""GCoNet: parameter count, official key names/shapes, forward shapes, GAM/GCM maths, losses, chunked prediction."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from reference_models import gconet  # noqa: E402
from reference_models.predict import load_checkpoint, predict_images  # noqa: E402


def expected_official_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official GINet state dict without the VGG FCs, from models-spec.md section 1."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels_in = 3
    for block, (width, convs) in enumerate(
        zip((64, 128, 256, 512, 512), (2, 2, 3, 3, 3), strict=True), start=1
    ):
        for j in range(1, convs + 1):
            shapes[f"backbone.conv{block}.conv{block}_{j}.weight"] = (width, channels_in, 3, 3)
            shapes[f"backbone.conv{block}.conv{block}_{j}.bias"] = (width,)
            channels_in = width

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out, inp, k, k)
        shapes[f"{name}.bias"] = (out,)

    conv("toplayer.0", 64, 512, 1)
    conv("toplayer.2", 64, 64, 1)
    for level, inp in zip((4, 3, 2, 1), (512, 256, 128, 64), strict=True):
        conv(f"latlayer{level}.convlayer.0", 64, inp, 3)
        conv(f"latlayer{level}.convlayer.2", 64, 64, 3)
    for level in (1, 2, 3, 4):
        conv(f"enlayer{level}.enlayer.0", 64, 64, 3)
        conv(f"enlayer{level}.enlayer.2", 64, 64, 3)
        conv(f"dslayer{level}.enlayer.0", 64, 64, 3)
        conv(f"dslayer{level}.enlayer.2", 64, 64, 3)
        conv(f"dslayer{level}.predlayer.0", 1, 64, 1)
    conv("pred_layer.enlayer.0", 128, 512, 3)
    conv("pred_layer.predlayer.0", 1, 128, 1)
    for name in ("all_attention.query_transform", "all_attention.key_transform", "all_attention.conv6"):
        conv(f"co_x5.{name}", 512, 512, 1)
    conv("co_x5.conv_output", 512, 512, 1)
    conv("co_x5.conv_transform", 512, 512, 1)
    shapes["co_x5.fc_transform.weight"] = (512, 512)
    shapes["co_x5.fc_transform.bias"] = (512,)
    shapes["classifier.weight"] = (291, 512)
    shapes["classifier.bias"] = (291,)
    return shapes


@pytest.fixture(scope="module")
def model() -> gconet.GCoNet:
    torch.manual_seed(0)
    return gconet.build_model({"pretrained": False})


def official_gam_attention(layer: gconet.GroupAttention, x5: torch.Tensor) -> torch.Tensor:
    """The release's AllAttLayer.forward up to the attention map, transcribed step by step."""
    b, c, h5, w5 = x5.shape
    x_query = layer.query_transform(x5).view(b, c, -1)
    x_query = torch.transpose(x_query, 1, 2).contiguous().view(-1, c)
    x_key = layer.key_transform(x5).view(b, c, -1)
    x_key = torch.transpose(x_key, 0, 1).contiguous().view(c, -1)
    x_w = torch.matmul(x_query, x_key).view(b * h5 * w5, b, h5 * w5)
    x_w = torch.max(x_w, -1).values.mean(-1)
    x_w = x_w.view(b, -1) * (1.0 / math.sqrt(c))
    return torch.softmax(x_w, dim=-1).view(b, h5, w5).unsqueeze(1)


def test_parameter_count_and_trainable_parts(model: gconet.GCoNet) -> None:
    assert sum(p.numel() for p in model.parameters()) == 18_359_016
    trainable_backbone = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable_backbone == ["conv5.conv5_3.weight", "conv5.conv5_3.bias"]
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("backbone."))


def test_state_dict_matches_the_official_names_and_shapes(model: gconet.GCoNet) -> None:
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == expected_official_shapes()


def test_official_checkpoint_loads_strictly(model: gconet.GCoNet, tmp_path: Path) -> None:
    official = {key: torch.randn(shape) for key, shape in expected_official_shapes().items()}
    official.update({f"backbone.classifier.{i}.weight": torch.zeros(2, 2) for i in (0, 3, 6)})
    path = tmp_path / "final_gconet.pth"
    torch.save(official, path)
    _, loaded, cfg, backbone = load_checkpoint(path, "gconet")
    assert cfg["size"] == 224 and backbone == "external-checkpoint"
    assert torch.equal(loaded.co_x5.all_attention.conv6.weight, official["co_x5.all_attention.conv6.weight"])


def test_forward_shapes(model: gconet.GCoNet) -> None:
    x = torch.randn(6, 3, 64, 64)
    model.train()
    maps, class_logits, gcm_logits = model(x)
    assert [tuple(m.shape) for m in maps] == [(6, 1, 64, 64)] * 5
    assert tuple(class_logits.shape) == (6, 291)
    assert tuple(gcm_logits.shape) == (12, 1, 64, 64)
    with pytest.raises(ValueError, match="two equal groups"):
        model(x[:5])
    model.eval()
    with torch.no_grad():
        maps = model(x[:5])
    assert [tuple(m.shape) for m in maps] == [(5, 1, 64, 64)] * 5
    assert float(maps[-1].min()) > 0 and float(maps[-1].max()) < 1


def test_gam_matches_the_release_and_is_permutation_equivariant(model: gconet.GCoNet) -> None:
    gam = model.co_x5.all_attention
    x5 = torch.randn(5, 512, 3, 4)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        reference = official_gam_attention(gam, x5)
        for block in (None, 1, 2):
            torch.testing.assert_close(gam.attention(x5, block), reference)
        torch.testing.assert_close(gam.attention(x5[perm]), reference[perm])
        assert torch.allclose(reference.sum(dim=(2, 3)), torch.ones(5, 1))
        torch.testing.assert_close(model.co_x5.consensus(x5[perm]), model.co_x5.consensus(x5))
        # eval maps are equivariant too: the consensus ignores the order of the group
        model.eval()
        images = torch.randn(4, 3, 32, 32)
        order = torch.tensor([2, 3, 1, 0])
        torch.testing.assert_close(model(images[order])[-1], model(images)[-1][order], atol=1e-5, rtol=1e-4)


def test_gcm_positives_and_negatives(model: gconet.GCoNet) -> None:
    x5 = torch.randn(4, 512, 2, 2)
    layer = model.co_x5
    layer.train()
    with torch.no_grad():
        positive, negative = layer(x5)
        e1, e2 = layer.consensus(x5[:2]), layer.consensus(x5[2:])
    torch.testing.assert_close(positive, torch.cat([x5[:2] * e1, x5[2:] * e2]))
    torch.testing.assert_close(negative, torch.cat([x5[:2] * e2, x5[2:] * e1]))
    assert tuple(e1.shape) == (1, 512, 1, 1)


def test_losses_by_hand() -> None:
    gt = torch.zeros(1, 1, 2, 2)
    gt[0, 0, 0] = 1.0
    half = torch.full((1, 1, 2, 2), 0.5)
    # inter = 1, union = 2 + 2 - 1 = 3
    assert float(gconet.iou_loss(half, gt)) == pytest.approx(1 - 1 / 3)
    assert float(gconet.iou_loss(torch.cat([gt, gt]), torch.cat([gt, gt]))) == 0.0  # summed, not averaged
    assert float(gconet.binary_focal_loss(torch.zeros(3), torch.ones(3))) == pytest.approx(0.25 * math.log(2))
    logits, target = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])
    p_t = torch.sigmoid(torch.tensor([2.0, 1.0]))
    expected = ((1 - p_t) ** 2 * -torch.log(p_t)).mean()
    assert float(gconet.binary_focal_loss(logits, target)) == pytest.approx(float(expected), rel=1e-6)


def test_training_loss_is_finite_and_weighted(model: gconet.GCoNet) -> None:
    model.train()
    batch = {
        "images": torch.randn(4, 3, 32, 32),
        "masks": (torch.rand(4, 1, 32, 32) > 0.6).float(),
        "labels": torch.tensor([0, 0, 7, 7]),
    }
    parts = gconet.training_loss(model, batch, {})
    assert all(torch.isfinite(v) for v in parts.values())
    total = parts["iou"] + 3 * parts["cls"] + 250 * parts["focal"]
    assert float(parts["loss"].detach()) == pytest.approx(float(total.detach()), rel=1e-5)
    parts["loss"].backward()
    assert model.backbone.conv5.conv5_3.weight.grad is not None
    assert model.backbone.conv4.conv4_3.weight.grad is None
    model.zero_grad(set_to_none=True)


def test_chunked_prediction_shares_the_whole_group_consensus() -> None:
    torch.manual_seed(1)
    model = gconet.build_model({"pretrained": False}).eval()
    with torch.no_grad():  # make the consensus matter at random init (it is ~1e-4 otherwise)
        model.co_x5.all_attention.conv6.weight.mul_(1e6)
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        whole = predict_images(gconet, model, images, {}, None)
        chunked = predict_images(gconet, model, images, {}, 2)
        alone = torch.cat([gconet.predict_group(model, part, {}) for part in images.split(2)])
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)
    assert (alone - whole).abs().max() > 1e-4  # independent chunks would differ (by ~7e-4)
