"""GICD: state dict vs the official one, and outputs vs the official code run on the same name-seeded weights.

The fixtures in tests/fixtures/gicd/ were produced by running zzhanghub/gicd@b587591 on the CPU (see
tests/fixtures/README.md): its key lists (GINet = the released ``gicd_ginet.pth``; the co-classifier =
torchvision's ``vgg16``), its outputs for the group ``Tiny/hopper`` at 32 x 32 through its own loader, and the
PNGs its ``test.py`` writes for ``Tiny``. Weights: ``tests/gicd_weights.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import gicd  # noqa: E402
from reference_models import predict as predictor  # noqa: E402
from reference_models.backbones import load_torch_mapping  # noqa: E402
from reference_models.data import GroupDataset, to_tensor_batch  # noqa: E402
from reference_models.predict import predict_datasets, predict_images  # noqa: E402
from tests.gicd_weights import gicd_seeded_state  # noqa: E402
from tests.official_fixtures import assert_pngs_match_official  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "gicd"
DATA = Path(__file__).parent / "fixtures" / "gconet_plus" / "data"  # the same tiny real images
SIZE = 32


def meta_model() -> gicd.GICD:
    """The architecture without allocating its 278 M weights."""
    with torch.device("meta"):
        return gicd.GICD()


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "official_outputs.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def official_keys() -> dict[str, list[tuple[str, tuple[int, ...], str]]]:
    document = json.loads((FIXTURES / "state_dict_keys.json").read_text())
    return {
        part: [(key, tuple(shape), dtype) for key, shape, dtype in document[part]]
        for part in ("co_classifier", "ginet")
    }


@pytest.fixture(scope="module")
def seeded() -> dict[str, torch.Tensor]:
    return gicd_seeded_state(meta_model().state_dict())


def seeded_model(state: dict[str, torch.Tensor], dtype: torch.dtype) -> gicd.GICD:
    model = meta_model()
    model.load_state_dict({key: value.to(dtype) for key, value in state.items()}, strict=True, assign=True)
    return model.eval()


@pytest.fixture(scope="module")
def model64(seeded: dict) -> gicd.GICD:
    return seeded_model(seeded, torch.float64)


def hopper(official: dict, dtype: torch.dtype) -> torch.Tensor:
    """cosalbench's test pipeline (decode, PIL BILINEAR resize, ImageNet normalise) in the release's
    ``os.listdir`` order (recorded in the fixture)."""
    dataset = GroupDataset(DATA, "Tiny", SIZE, with_masks=False)
    index = {item.stem: i for i, item in enumerate(dataset.items["hopper"])}
    stems = [Path(str(name)).stem for name in official["hopper_order"]]
    return to_tensor_batch([dataset.image("hopper", index[stem]) for stem in stems])[0].to(dtype)


def test_state_dict_matches_the_official_key_lists(official_keys: dict) -> None:
    ours = [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in meta_model().state_dict().items()
    ]
    expected = [
        (f"{part}.{key}", shape, dtype)
        for part in ("co_classifier", "ginet")
        for key, shape, dtype in official_keys[part]
    ]
    assert ours == expected
    assert (len(official_keys["co_classifier"]), len(official_keys["ginet"])) == (32, 92)
    assert sum(int(np.prod(shape)) for _, shape, _ in official_keys["ginet"]) == 139_686_572


def test_eval_outputs_match_the_official_code_in_float64(official: dict, model64: gicd.GICD) -> None:
    """Measured: final maps max |diff| 0.0, CAM 3e-8 and pooled gradient 1.5e-8 (both stored in float32).

    The final maps come through the predictor's chunked path (chunks of 2 + 1 images sharing the group's
    co-coding) under ``torch.no_grad()``, as ``cosalbench predict --max-group-size 2`` runs them."""
    images = hopper(official, torch.float64)
    with torch.no_grad():  # the gradient step re-enables autograd itself
        co_coding = model64.co_coding((images,))
        x5 = model64.ginet.backbone(images)[4]
        gradient = model64.ginet.class_gradient(x5, co_coding)
        cam = gicd.upsample(model64.ginet.gradient_attention(x5, co_coding)[1], (SIZE, SIZE))
        final = predict_images(gicd, model64, images, {}, 2)
    assert float(np.abs(final.numpy() - official["final_f64"]).max()) <= 1e-5
    assert float(np.abs(cam.numpy() - official["cam_f64"]).max()) <= 1e-6
    assert float(np.abs(co_coding[0].numpy() - official["co_coding_f64"]).max()) <= 1e-12
    pooled = gradient.mean(dim=(2, 3)).numpy()
    assert float(np.abs(pooled - official["grad_pooled_f64"]).max()) <= 1e-6
    assert all(p.grad is None for p in model64.parameters())  # autograd.grad, not backward()
    assert float(official["final_f64"].std()) > 0.2  # not degenerate ...
    assert (
        200 < int((official["grad_pooled_f64"] > 0).sum(axis=1).min()) < 312
    )  # ... nor one-channel attention


def test_float32_outputs_match_the_official_code(official: dict, seeded: dict) -> None:
    """Measured 1.0e-5 (the release runs one image at a time, here the group is one batch). These weights make
    float32 itself sensitive: the release's own float32 maps are 1.8e-2 from its float64 ones."""
    model = seeded_model(seeded, torch.float32)
    with torch.no_grad():
        ours = gicd.predict_group(model, hopper(official, torch.float32), {}).numpy()
    assert float(np.abs(ours - official["final_f32"]).max()) <= 1e-4


def test_profile_counts_the_gradient_step(official: dict, seeded: dict) -> None:
    """What ``cosalbench profile`` runs: the FLOP counter's module hooks see the autograd step too."""
    from torch.utils.flop_counter import FlopCounterMode

    from reference_models.profile import inference_parameters

    model = seeded_model(seeded, torch.float32)
    image = hopper(official, torch.float32)[:1]

    def run() -> torch.Tensor:
        with torch.no_grad():
            return gicd.predict_group(model, image, {})

    assert inference_parameters(model, run) == sum(p.numel() for p in model.parameters()) == 278_044_116
    with FlopCounterMode(display=False) as counter:
        run()
    linear_backward = 2 * (25088 * 4096 + 4096 * 4096 + 4096 * 1000)  # d logits / d x5 through the classifier
    assert counter.get_total_flops() > 3 * linear_backward


def _tiny_state(keys: list[tuple[str, tuple[int, ...], str]], prefix: str = "") -> dict[str, torch.Tensor]:
    """A stride-0 tensor per key (a few bytes on disk): value i / 1000 for the i-th key."""
    return {f"{prefix}{key}": torch.tensor(i / 1000).expand(shape) for i, (key, shape, _) in enumerate(keys)}


def test_released_checkpoint_format_loads_strictly_with_the_imagenet_co_classifier(
    official_keys: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released, vgg16 = tmp_path / "gicd_ginet.pth", tmp_path / "vgg16-397923af.pth"
    torch.save(_tiny_state(official_keys["ginet"]), released)
    torch.save(_tiny_state(official_keys["co_classifier"]), vgg16)
    monkeypatch.setenv("COSALBENCH_VGG16", str(vgg16))
    model = (
        meta_model()
    )  # what load_checkpoint does, without allocating 1.1 GB anew (its own test: PNGs below)
    model.load_state_dict(
        gicd.adapt_state_dict(load_torch_mapping(released, "checkpoint")), strict=True, assign=True
    )
    state = model.state_dict()
    for part in ("co_classifier", "ginet"):
        for i, (key, _, _) in enumerate(official_keys[part]):
            assert bool((state[f"{part}.{key}"] == i / 1000).all()), key
    whole = _tiny_state(official_keys["co_classifier"], "co_classifier.")
    whole.update(_tiny_state(official_keys["ginet"], "ginet."))
    assert gicd.adapt_state_dict(whole) is whole  # a whole GICD state dict needs no ImageNet file


def test_missing_checkpoint_or_co_classifier_weights_are_one_line_errors(
    official_keys: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = _tiny_state(official_keys["ginet"])
    monkeypatch.delenv("COSALBENCH_VGG16", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(CosalbenchError, match="vgg16-397923af.pth") as missing:
        gicd.adapt_state_dict(released)
    assert str(missing.value.path).endswith("torch/hub/checkpoints/vgg16-397923af.pth")
    assert "COSALBENCH_VGG16" in missing.value.hint
    with pytest.raises(CosalbenchError, match="checkpoint not found") as absent:
        predictor.load_checkpoint(tmp_path / "gicd_ginet.pth", "gicd")
    assert "gicd_ginet.pth" in absent.value.hint and "--checkpoint" in absent.value.hint
    foreign = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, foreign)
    monkeypatch.setenv("COSALBENCH_VGG16", str(foreign))
    with pytest.raises(CosalbenchError, match="not torchvision's vgg16 state dict"):
        gicd.adapt_state_dict(released)


def test_predicted_pngs_within_one_grey_level_of_the_official_ones(
    seeded: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``predict_datasets`` end to end from a released-format checkpoint plus the co-classifier file. Only the
    unpickling is replaced (writing the 1.1 GB of seeded weights would dominate the suite; the files' format is
    the test above)."""
    released, vgg16 = tmp_path / "gicd_ginet.pth", tmp_path / "vgg16-397923af.pth"
    released.write_bytes(b"seeded GINet")
    vgg16.write_bytes(b"seeded VGG16")
    parts = {
        released: {k.removeprefix("ginet."): v for k, v in seeded.items() if k.startswith("ginet.")},
        vgg16: {
            k.removeprefix("co_classifier."): v for k, v in seeded.items() if k.startswith("co_classifier.")
        },
    }
    monkeypatch.setattr(predictor, "load_torch_mapping", lambda path, what: parts[Path(path)])
    monkeypatch.setattr(gicd, "load_torch_mapping", lambda path, what: parts[Path(path)])
    monkeypatch.setenv("COSALBENCH_VGG16", str(vgg16))
    recipe = tmp_path / "gicd.yaml"
    recipe.write_text(f"model: gicd\nsize: {SIZE}\n")
    monkeypatch.setattr(gicd, "DEFAULT_RECIPE", str(recipe))
    # uninitialised weights instead of random ones (the init of 278 M values is slow): every map then
    # depends on load_checkpoint having loaded each tensor
    monkeypatch.setattr(gicd, "build_model", lambda cfg: meta_model().to_empty(device="cpu"))
    summary = predict_datasets(
        released, "gicd", ["Tiny"], DATA, tmp_path / "preds", device="cpu", progress=False
    )
    assert_pngs_match_official(
        summary, tmp_path / "preds" / "gicd" / "Tiny", FIXTURES / "official_png" / "Tiny", 5, 5
    )


def test_train_reference_refuses_the_predict_only_port(capsys: pytest.CaptureFixture) -> None:
    from cosalbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train-reference", "gicd"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "cosalbench: error: gicd is predict-only in cosalbench (its port has no training loss) "
        "(see `cosalbench models` for the models that train)"
    ]
