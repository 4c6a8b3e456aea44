"""RCGS network: group-vector invariances, exact chunked prediction, stable state dict and parameter counts."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import rcgs  # noqa: E402
from reference_models.recipes import load_recipe  # noqa: E402

TINY = {
    "categories": ["a", "b", "c", "d", "e"],
    "pretrained": False,
    "reduce_channels": 16,
    "embed_dim": 24,
    "group_dim": 12,
    "lrbp_rank": 4,
    "fusion_channels": 16,
}

# torchvision vgg19().features: (in, out) of its 16 3x3 convolutions and their indices
VGG19_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256)] + [(256, 256)] * 3
VGG19_CONVS += [(256, 512)] + [(512, 512)] * 7
VGG19_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
DECODER_KEYS = ["lateral3", "lateral4", "lateral5", "up4", "smooth4", "up3", "smooth3", "head", "score"]


def tiny_model(**overrides: object) -> rcgs.RCGS:
    torch.manual_seed(0)
    return rcgs.build_model({**TINY, **overrides}).eval()


@pytest.mark.parametrize(("pooling", "size"), [("hlrbp", 64), ("ap", 32)])
def test_group_vector_is_invariant_to_order_and_duplication(pooling: str, size: int) -> None:
    model = tiny_model(group_pooling=pooling)
    images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    vector = rcgs.group_context(model, images, {})
    assert vector.shape == (12,)  # the group semantic vector v in R^D, not the L = 5 category scores
    shuffled = rcgs.group_context(model, images[torch.tensor([3, 0, 2, 1])], {})
    torch.testing.assert_close(shuffled, vector, rtol=0, atol=1e-6)
    doubled = rcgs.group_context(model, torch.cat([images, images.flip(0)]), {})
    torch.testing.assert_close(doubled, vector, rtol=0, atol=1e-5)
    # and it is a property of the group: another group gives another vector
    other = rcgs.group_context(model, torch.randn(4, 3, size, size), {})
    assert (other - vector).abs().max() > 1e-4


def test_chunked_prediction_equals_whole_group_prediction() -> None:
    model = tiny_model()
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    whole = rcgs.predict_group(model, images, {})
    assert whole.shape == (5, 1, 32, 32)
    assert ((whole >= 0) & (whole <= 1)).all()
    chunked = rcgs.predict_group(model, images, {"predict_chunk": 3})
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    context = rcgs.group_context(model, images, {"predict_chunk": 2})
    torch.testing.assert_close(rcgs.decode(model, images[3:], context, {}), whole[3:], rtol=0, atol=1e-6)


@pytest.mark.parametrize("fusion", ["multi", "single-g5"])
def test_forward_shapes_and_group_layout(fusion: str) -> None:
    model = tiny_model(fusion=fusion)
    output = model(torch.randn(4, 3, 32, 64), group_size=2)
    assert output.saliency.shape == (4, 1, 32, 64)
    assert output.categories.shape == (2, 5)
    assert output.vectors.shape == (2, 12)
    # eq. 7: the co-category logits are W^T v, W in R^{D x L}
    assert model.classifier.weight.shape == (5, 12) and model.classifier.bias is None
    torch.testing.assert_close(output.categories, output.vectors @ model.classifier.weight.T)
    with pytest.raises(ValueError, match="groups of 4"):
        model(torch.randn(6, 3, 64, 64), group_size=4)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(2, 3, 48, 64), group_size=2)


def test_training_loss_is_pixel_bce_plus_weighted_category_bce() -> None:
    model = tiny_model()
    batch = {
        "images": torch.randn(4, 3, 32, 32),
        "masks": (torch.rand(4, 1, 32, 32) > 0.5).float(),
        "labels": torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]]),
    }
    cfg = {"subgroup_size": 2, "category_weight": 2.5}
    parts = rcgs.training_loss(model, batch, cfg)
    output = model(batch["images"], 2)
    p, c = torch.sigmoid(output.saliency), torch.sigmoid(output.categories)
    pixel = -(batch["masks"] * p.log() + (1 - batch["masks"]) * (1 - p).log()).mean()
    label = -(batch["labels"] * c.log() + (1 - batch["labels"]) * (1 - c).log()).mean()
    torch.testing.assert_close(parts["saliency"], pixel, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts["category"], label, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts["loss"], pixel + 2.5 * label, rtol=1e-5, atol=1e-6)
    parts["loss"].backward()
    assert model.pooling.group_lrbp.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.features[0].weight.grad.abs().sum() > 0


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def expected_parameters(k: int, pooling: str = "hlrbp", fusion: str = "multi") -> int:
    """Parameter count derived by hand from the architecture (default widths m=256, D1=D=512, r=8, C=256)."""
    backbone = sum(_conv(cin, cout, 3) for cin, cout in VGG19_CONVS)
    assert backbone == 20_024_384  # torchvision vgg19().features
    if pooling == "hlrbp":
        head = _conv(512, 256, 1, bias=False) + (256 * 512 * 8 + 512) + (512 * 512 * 8 + 512)
    else:
        head = (512 * 512 + 512) + (512 * 512 + 512)
    classifier = 512 * k  # W in R^{D x L}, no bias
    if fusion == "multi":
        laterals = _conv(256 + 512, 256, 1) + 2 * _conv(512 + 512, 256, 1)
        top_down = 2 * _conv(256, 256, 4) + 2 * _conv(256, 256, 3)
        upsample = 16 * 16  # deconv x8, 1 -> 1 channel, no bias
    else:
        laterals, top_down = _conv(512 + 512, 256, 1), 0
        upsample = 64 * 64  # deconv x32
    output = _conv(256, 256, 3) + _conv(256, 1, 1) + upsample
    return backbone + head + classifier + laterals + top_down + output


def _paper_model(**overrides: object) -> rcgs.RCGS:
    cfg = {**load_recipe("rcgs.yaml"), "pretrained": False, "categories": [f"c{i}" for i in range(78)]}
    with torch.device("meta"):
        return rcgs.build_model({**cfg, **overrides})


@pytest.mark.parametrize(
    ("pooling", "fusion", "count"),
    [("hlrbp", "multi", 27_932_225), ("ap", "multi", 25_179_713), ("hlrbp", "single-g5", 24_198_977)],
)
def test_parameter_count_of_the_paper_configuration(pooling: str, fusion: str, count: int) -> None:
    model = _paper_model(group_pooling=pooling, fusion=fusion)
    assert expected_parameters(78, pooling, fusion) == count
    assert sum(p.numel() for p in model.parameters()) == count


def test_state_dict_keys_are_stable() -> None:
    state = _paper_model().state_dict()
    expected = [f"features.{i}.{kind}" for i in VGG19_CONV_INDICES for kind in ("weight", "bias")]
    expected += ["pooling.reduce.weight"]
    expected += [
        f"pooling.{name}.{kind}" for name in ("image_lrbp", "group_lrbp") for kind in ("weight", "bias")
    ]
    expected += ["classifier.weight"]
    expected += [f"decoder.{name}.{kind}" for name in DECODER_KEYS for kind in ("weight", "bias")]
    expected += ["decoder.out.weight"]
    assert list(state) == expected
    assert state["pooling.image_lrbp.weight"].shape == (512, 8, 256)
    assert state["pooling.group_lrbp.weight"].shape == (512, 8, 512)
    assert state["classifier.weight"].shape == (78, 512)
    assert state["decoder.lateral3.weight"].shape == (256, 256 + 512, 1, 1)
    single = list(_paper_model(fusion="single-g5").state_dict())
    assert [key for key in single if key.startswith("decoder.")] == [
        f"decoder.{name}.{kind}" for name in ("lateral5", "head", "score") for kind in ("weight", "bias")
    ] + ["decoder.out.weight"]
    ap = list(_paper_model(group_pooling="ap").state_dict())
    assert [key for key in ap if key.startswith("pooling.")] == [
        "pooling.image_fc.weight",
        "pooling.image_fc.bias",
        "pooling.group_fc.weight",
        "pooling.group_fc.bias",
    ]


def test_recipe_errors_are_reported_as_user_errors() -> None:
    with pytest.raises(CosalbenchError, match="categories"):
        rcgs.build_model({**TINY, "categories": []})
    with pytest.raises(CosalbenchError, match="group_pooling"):
        rcgs.build_model({**TINY, "group_pooling": "max"})
    with pytest.raises(CosalbenchError, match="multiple of 32"):
        rcgs.build_model({**TINY, "size": 100})
