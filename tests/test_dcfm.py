"""DCFM: state dict vs the official one, and outputs vs the official code run on the same name-seeded weights.

The fixtures in tests/fixtures/dcfm/ were produced by running siyueyu/DCFM@05800b6 on the CPU (see
tests/fixtures/README.md): its key list, its eval outputs for the group ``Tiny/hopper`` (the GCoNet+ fixture
images) at 48 x 48 through its own test loader, the PNGs its test.py writes, and its train.py loss on that group.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import dcfm  # noqa: E402
from reference_models.data import GroupDataset, to_tensor_batch  # noqa: E402
from reference_models.predict import load_checkpoint, predict_images  # noqa: E402
from tests.name_seeded import name_seeded_state  # noqa: E402
from tests.official_fixtures import assert_pngs_match_official, predict_seeded  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "dcfm"
DATA = Path(__file__).parent / "fixtures" / "gconet_plus" / "data"
SIZE = 48
SCALES = {"decoder.dslayer1.predlayer": 0.05}  # the fixture script's: final logits in about [-4.5, 0.6]
VGG_FC_SHAPES = {  # torchvision's VGG16 classifier, stored in the release's checkpoint, never called
    "backbone.classifier.0.weight": [4096, 25088],
    "backbone.classifier.0.bias": [4096],
    "backbone.classifier.3.weight": [4096, 4096],
    "backbone.classifier.3.bias": [4096],
    "backbone.classifier.6.weight": [1000, 4096],
    "backbone.classifier.6.bias": [1000],
}


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "official_outputs.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def official_keys() -> list[tuple[str, list[int], str]]:
    return [tuple(entry) for entry in json.loads((FIXTURES / "state_dict_keys.json").read_text())["keys"]]


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = dcfm.DCFMNet().state_dict()
    return name_seeded_state(shapes, SCALES)


def seeded_model(state: dict[str, torch.Tensor], dtype: torch.dtype = torch.float64) -> dcfm.DCFMNet:
    """DCFM holding ``state`` in ``dtype`` (built on the meta device: no initialisation to pay for)."""
    with torch.device("meta"):
        model = dcfm.DCFMNet()
    model.load_state_dict({key: value.to(dtype) for key, value in state.items()}, strict=True, assign=True)
    return model.eval()


@pytest.fixture(scope="module")
def float64_model(seeded_state: dict) -> dcfm.DCFMNet:
    return seeded_model(seeded_state)


@pytest.fixture(scope="module")
def float64_images(official: dict) -> torch.Tensor:
    return hopper(official).double()


def hopper(official: dict) -> torch.Tensor:
    """cosalbench's test pipeline (the predictor's: PIL BILINEAR resize, ImageNet normalisation) on the group,
    in the official loader's ``os.listdir`` order (recorded in the fixture)."""
    dataset = GroupDataset(DATA, "Tiny", SIZE, with_masks=False)
    index = {item.stem: i for i, item in enumerate(dataset.items["hopper"])}
    stems = [Path(str(name)).stem for name in official["eval_order"]]
    return to_tensor_batch([dataset.image("hopper", index[stem]) for stem in stems])[0]


def max_diff(ours: torch.Tensor, theirs: np.ndarray) -> float:
    return float(np.abs(ours.detach().double().numpy() - theirs).max())


def test_state_dict_matches_the_official_key_list(official_keys: list) -> None:
    ours = [
        (key, list(value.shape), str(value.dtype).removeprefix("torch."))
        for key, value in dcfm.build_model({"pretrained": False}).state_dict().items()
    ]
    dropped = [entry for entry in official_keys if entry[0].startswith("backbone.classifier.")]
    assert {key: shape for key, shape, _ in dropped} == VGG_FC_SHAPES
    assert ours == [entry for entry in official_keys if entry not in dropped]
    assert (len(official_keys), len(ours)) == (112, 106)


def test_parameters_and_trainable_backbone(official_keys: list) -> None:
    model = dcfm.build_model({"pretrained": False})
    assert sum(p.numel() for p in model.backbone.parameters()) == 14_714_688
    # aug 7 x (512^2 + 512) + fusion 3 x (512^2 + 512) + decoder 1,329,028 (from the layer shapes)
    assert sum(p.numel() for p in model.parameters()) == 14_714_688 + 1_838_592 + 787_968 + 1_329_028
    assert sum(int(np.prod(shape)) for _, shape, _ in official_keys) == 18_670_276 + 123_642_856  # + VGG FCs
    trainable = {name for name, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"conv5.conv5_3.weight", "conv5.conv5_3.bias"}


@pytest.mark.parametrize("wrap", ["bare", "checkpoint", "dataparallel-wrapper"])
def test_released_checkpoint_formats_load_strictly(official_keys: list, tmp_path: Path, wrap: str) -> None:
    # one distinct value per tensor, stored as an expanded scalar: the 140 M-parameter file stays a few KB
    state = {key: torch.full((1,), float(i)).expand(shape) for i, (key, shape, _) in enumerate(official_keys)}
    payload = {
        "bare": state,
        "checkpoint": {"epoch": 199, "state_dict": state},
        "dataparallel-wrapper": {f"module.dcfmnet.{key}": value for key, value in state.items()},
    }[wrap]
    path = tmp_path / "best_ep198_Smeasure0.7019.pth"
    torch.save(payload, path)
    _, model, cfg, backbone = load_checkpoint(path, "dcfm")
    assert cfg["size"] == 224 and backbone == "external-checkpoint"
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key].expand_as(value)), key


def test_a_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "final_gconet.pth"
    torch.save({"toplayer.0.weight": torch.zeros(64, 512, 1, 1)}, path)
    with pytest.raises(CosalbenchError, match="does not fit the dcfm architecture"):
        load_checkpoint(path, "dcfm")


def test_eval_outputs_match_the_official_code_in_float64(
    official: dict, float64_model: dcfm.DCFMNet, float64_images: torch.Tensor
) -> None:
    """Every stored output, float64: measured max |diff| 0.0 (the bound leaves room for other CPU kernels)."""
    sides: dict[int, torch.Tensor] = {}
    hooks = [
        getattr(float64_model.decoder, f"dslayer{level}").register_forward_hook(
            lambda _m, _a, out, level=level: sides.__setitem__(level, out)
        )
        for level in (4, 3, 2)
    ]
    with torch.no_grad():
        logits = float64_model(float64_images)[-1]
        fused = float64_model.fusion(float64_model.backbone(float64_images)[4])
    for hook in hooks:
        hook.remove()
    diffs = {
        "eval_logits": max_diff(logits, official["eval_logits"]),
        **{f"eval_side{level}": max_diff(sides[level], official[f"eval_side{level}"]) for level in sides},
        "eval_proto": max_diff(fused.prototype.flatten(), official["eval_proto"]),
    }
    assert len(diffs) == 5 and max(diffs.values()) <= 1e-9, diffs
    assert torch.equal(fused.seed_mask.to(torch.uint8), torch.from_numpy(official["eval_seed_mask"]))
    assert float(torch.sigmoid(logits).std()) > 0.1  # not degenerate


def test_eval_logits_match_the_official_code_in_float32(official: dict, seeded_state: dict) -> None:
    """float32: measured max |diff| 0.0 in one process; float32 kernels of other CPUs may round differently,
    and the official float32 and float64 runs differ by 2.9e-5 -- hence 1e-4."""
    model = seeded_model(seeded_state, torch.float32)
    with torch.no_grad():
        logits = model(hopper(official))[-1]
    assert max_diff(logits, official["eval_logits_fp32"]) <= 1e-4


def test_chunked_prediction_equals_one_pass(
    official: dict, float64_model: dcfm.DCFMNet, float64_images: torch.Tensor
) -> None:
    """Chunks of 2 + 1 images sharing the group's seeds and prototype give the one-pass maps."""
    whole = predict_images(dcfm, float64_model, float64_images, {}, None)
    assert float((whole - torch.sigmoid(torch.from_numpy(official["eval_logits"]))).abs().max()) <= 1e-9
    chunked = predict_images(dcfm, float64_model, float64_images, {}, 2)
    assert float((chunked - whole).abs().max()) <= 1e-9


def test_training_loss_matches_the_official_train_step(
    official: dict, seeded_state: dict, float64_images: torch.Tensor
) -> None:
    """train.py's loss_iou, loss_scl and total on [hopper] in train mode (no ReLU in the correlation), float64,
    and the gradients they give (official measured |diff| 0.0 on the losses)."""
    model = seeded_model(seeded_state).train()
    for name, parameter in model.backbone.named_parameters():  # train.py: only conv5_3 of the backbone trains
        parameter.requires_grad_(name.startswith("conv5.conv5_3"))
    masks = torch.from_numpy(official["gts_u8"]).double() / 255.0
    outputs = model(float64_images, masks)
    parts = dcfm.loss_parts(outputs, masks)
    total = parts["iou"] + dcfm.SCL_WEIGHT * parts["scl"]
    ours = [parts["iou"].item(), parts["scl"].item(), total.item()]
    assert ours == pytest.approx(official["train_losses"].tolist(), rel=1e-12, abs=1e-12)
    protos = torch.cat([outputs.prototype, outputs.foreground_prototype, outputs.background_prototype])
    assert max_diff(protos.flatten(1), official["train_protos"]) <= 1e-9
    total.backward()
    grads = [
        model.backbone.conv5.conv5_3.weight.grad.sum(),
        model.decoder.dslayer1.predlayer[0].weight.grad.sum(),
        model.fusion.conv.weight.grad.sum(),
    ]
    assert [float(g) for g in grads] == pytest.approx(official["train_grad_sums"].tolist(), rel=1e-9)
    assert model.backbone.conv4.conv4_3.weight.grad is None


def test_predicted_pngs_within_one_grey_level_of_the_official_ones(
    seeded_state: dict, tmp_path: Path
) -> None:
    summary = predict_seeded("dcfm", seeded_state, {"model": "dcfm", "size": SIZE}, DATA, tmp_path / "preds")
    assert_pngs_match_official(
        summary, tmp_path / "preds" / "dcfm" / "Tiny", FIXTURES / "official_png" / "Tiny", 5, 3
    )


# --- training data ------------------------------------------------------------------------------------


class RecordingRng:
    """Stands in for numpy's Generator: replays fixed draws and records the integer ranges asked for."""

    def __init__(self, integers: list[int], random: float, uniform: float) -> None:
        self.values, self.random_value, self.uniform_value = list(integers), random, uniform
        self.ranges: list[int] = []

    def integers(self, low: int, high: int) -> int:
        self.ranges += [low, high - 1]  # numpy's high is exclusive, random.randint's inclusive
        return self.values.pop(0)

    def random(self) -> float:
        return self.random_value

    def uniform(self, low: float, high: float) -> float:
        assert (low, high) == (-90.0, 90.0)
        return self.uniform_value


@pytest.mark.parametrize("case", [0, 1])
def test_training_transform_matches_the_release(official: dict, case: int) -> None:
    """dataset.py's RandomScaleCrop -> FixedResize -> flip -> RandomRotation on hopper/a with fixed draws
    (case 0 pads the rescaled image, case 1 does not): same ranges asked for, identical pixels."""
    from PIL import Image

    short, x, y, flip_draw, angle = official["aug_draws"][case].tolist()
    cfg = {"size": SIZE, "max_angle": 90.0}
    picture = Image.open(DATA / "images" / "Tiny" / "hopper" / "a.png").convert("RGB")
    label = Image.open(DATA / "gts" / "Tiny" / "hopper" / "a.png").convert("L")
    rng = RecordingRng([int(short), int(x), int(y)], flip_draw, angle)
    draw = dcfm.draw_augmentation(*picture.size, cfg, rng)
    assert rng.ranges == official["aug_int_ranges"][case].astype(int).tolist()
    assert draw == dcfm.AugmentDraw(int(short), int(x), int(y), flip_draw < 0.5, angle)
    image, mask = dcfm.augment_one(picture, label, draw, cfg)
    assert np.array_equal(image, official["aug_images"][case])
    assert np.array_equal(mask, official["aug_masks"][case])


def test_epoch_is_one_batch_per_group_in_folder_order() -> None:
    dataset = GroupDataset(DATA, "Tiny", 32)
    cfg = {"size": 32, "group_size": 2, "augment": True, "max_angle": 90.0}
    first = list(dcfm.make_batches(dataset, cfg, np.random.default_rng(5)))
    again = list(dcfm.make_batches(dataset, cfg, np.random.default_rng(5)))
    assert [tuple(b["images"].shape) for b in first] == [(2, 3, 32, 32), (2, 3, 32, 32)]  # hopper, present
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(first, again, strict=True))
    for batch in first:
        assert set(torch.unique(batch["masks"]).tolist()) <= {0.0, 1.0}
        assert batch["masks"].shape == (2, 1, 32, 32) and float(batch["masks"].sum()) > 0
    whole = list(
        dcfm.make_batches(dataset, {**cfg, "group_size": 16, "augment": False}, np.random.default_rng(0))
    )
    assert [b["images"].shape[0] for b in whole] == [3, 2]  # min(16, |group|)


def test_train_reference_runs_one_step(tmp_path: Path) -> None:
    from reference_models.train import resolve_recipe, train

    flags = {
        "data_root": str(DATA),
        "train_set": "Tiny",
        "max_steps": 2,
        "pretrained": False,
        "device": "cpu",
    }
    # two groups: none to hold out for validation
    cfg = resolve_recipe("dcfm", None, ["size=32", "group_size=2", "validation.groups=0"], flags)
    assert (cfg["lr"], cfg["backbone_lr_mult"], cfg["weight_decay"], tuple(cfg["betas"])) == (
        1e-4,
        0.1,
        1e-4,
        (0.9, 0.99),
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and summary["model"] == "dcfm"
    for record in records:
        assert set(record) >= {"iou", "scl", "loss"} and np.isfinite(record["loss"])
        assert record["loss"] == pytest.approx(record["iou"] + 0.1 * record["scl"], rel=1e-5)
    _, model, cfg2, backbone = load_checkpoint(tmp_path / "run" / "final.pth", "dcfm")
    assert cfg2["size"] == 32 and backbone == "random-init"


def test_a_missing_checkpoint_says_where_the_released_weights_are(tmp_path: Path) -> None:
    with pytest.raises(CosalbenchError, match="checkpoint not found") as caught:
        load_checkpoint(tmp_path / "best_ep198_Smeasure0.7019.pth", "dcfm")
    assert "1cfuq4eJoCwvFR9W1XOJX7Y0ttd8TGjlp" in str(caught.value) and "--checkpoint" in str(caught.value)
