"""VGG backbones: torchvision-format weight loading and the weight-file resolution order."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import backbones  # noqa: E402

# torchvision vgg16().features: (index, out, in) of every conv, written out by hand.
VGG16_CONVS = [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256),
    (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512),
]  # fmt: skip
VGG19_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def fake_torchvision_vgg16(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random tensors with torchvision's vgg16 names and shapes (small stand-ins for the FC layers)."""
    state = {}
    for index, out, inp in VGG16_CONVS:
        state[f"features.{index}.weight"] = torch.randn(out, inp, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = torch.randn(out, generator=generator)
    state["classifier.0.weight"] = torch.randn(8, 8, generator=generator)  # ignored by the loader
    state["classifier.6.bias"] = torch.randn(8, generator=generator)
    return state


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    state = fake_torchvision_vgg16(torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


def test_torchvision_indices_match_the_published_layouts() -> None:
    assert backbones.torchvision_conv_indices("vgg16") == [i for i, _, _ in VGG16_CONVS]
    assert backbones.torchvision_conv_indices("vgg19") == VGG19_CONV_INDICES
    features = backbones.VGGFeatures("vgg19")
    assert len(features) == 37  # 16 convs + 16 relus + 5 pools
    assert [i for i, m in enumerate(features) if isinstance(m, torch.nn.MaxPool2d)] == [4, 9, 18, 27, 36]
    assert sum(p.numel() for p in backbones.VGGFeatures("vgg16").parameters()) == 14_714_688
    assert sum(p.numel() for p in features.parameters()) == 20_024_384


def test_both_layouts_load_the_same_weights(vgg16_file: tuple[Path, dict]) -> None:
    path, state = vgg16_file
    cfg = {"pretrained": True, "backbone_weights": str(path)}
    blocks = backbones.vgg_blocks("vgg16", cfg)
    features = backbones.vgg16_features(cfg)
    assert blocks.init == features.init == "imagenet:vgg16-397923af.pth"
    assert torch.equal(blocks.conv5.conv5_3.weight, state["features.28.weight"])
    assert torch.equal(blocks.conv2.conv2_1.bias, state["features.5.bias"])
    assert torch.equal(features[28].weight, state["features.28.weight"])
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        x5 = blocks(x)[4]
        reference = features[:30](x)  # up to relu5_3, pool5 excluded
    torch.testing.assert_close(x5, reference)


def test_resolution_order(
    vgg16_file: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = vgg16_file
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    cached = hub / "vgg16-397923af.pth"
    cached.write_bytes(path.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COSALBENCH_VGG16", raising=False)
    assert backbones.resolve_weights("vgg16") == cached
    monkeypatch.setenv("COSALBENCH_VGG16", str(path))
    assert backbones.resolve_weights("vgg16") == path
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert backbones.resolve_weights("vgg16", explicit) == explicit
    monkeypatch.setenv("COSALBENCH_VGG16", str(tmp_path / "missing.pth"))
    with pytest.raises(CosalbenchError, match="COSALBENCH_VGG16"):
        backbones.resolve_weights("vgg16")


def test_missing_weights_explain_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("COSALBENCH_VGG19", raising=False)
    with pytest.raises(CosalbenchError) as info:
        backbones.vgg19_features({"pretrained": True})
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "--no-pretrained" in message
    assert backbones.vgg19_features({"pretrained": False}).init == "random-init"


def test_bad_weight_files_are_reported(tmp_path: Path) -> None:
    wrong = {f"features.{i}.weight": torch.zeros(1) for i, _, _ in VGG16_CONVS}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(CosalbenchError, match="shape|no tensor"):
        backbones.vgg16_features({"backbone_weights": str(tmp_path / "wrong.pth")})
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(CosalbenchError, match="cannot read"):
        backbones.vgg16_features({"backbone_weights": str(tmp_path / "junk.pth")})
