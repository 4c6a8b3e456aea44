"""GCoNet+: state dict vs the official one, and outputs vs the official code run on the same name-seeded weights.

The fixtures in tests/fixtures/gconet_plus/ were produced by running ZhengPeng7/GCoNet_plus@6adfe2a on the CPU
(see tests/fixtures/README.md): its key list, its eval maps for the group ``Tiny/hopper`` at 48 x 48 through its
own test pipeline, the PNGs its test.py writes, and its train.py loss on one [hopper a, b; present x, y] batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference_models import gconet_plus  # noqa: E402
from reference_models.data import GroupDataset, to_tensor_batch  # noqa: E402
from reference_models.predict import load_checkpoint, predict_images  # noqa: E402
from tests.name_seeded import name_seeded_state  # noqa: E402
from tests.official_fixtures import assert_pngs_match_official, predict_seeded  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "gconet_plus"
DATA = FIXTURES / "data"
SIZE = 48
# the scales the fixture script used: final DB convs small (smooth maps) or large (the k = 50 fallback)
SMOOTH = {"db_output_decoder.binarize.6": 6e-4, "db_output_decoder.thresh.6": -1.8e-3}
STEEP = {"db_output_decoder.binarize.6": 0.04, "db_output_decoder.thresh.6": -0.12}


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "official_outputs.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def official_keys() -> list[tuple[str, tuple[int, ...], str]]:
    document = json.loads((FIXTURES / "state_dict_keys.json").read_text())
    return [(key, tuple(shape), dtype) for key, shape, dtype in document["keys"]]


def seeded_model(scales: dict[str, float]) -> gconet_plus.GCoNetPlus:
    model = gconet_plus.build_model({"pretrained": False})
    model.load_state_dict(name_seeded_state(model.state_dict(), scales), strict=True)
    return model.eval()


def group_tensor(group: str, stems: list[str]) -> torch.Tensor:
    """cosalbench's own test pipeline (the predictor's): decode, PIL BILINEAR resize, ImageNet normalise;
    images in the order given (the official loader's ``os.listdir`` order, recorded in the fixture: the
    group mean's summation order shows at 1e-5 once the DB head's k = 300 amplifies it)."""
    dataset = GroupDataset(DATA, "Tiny", SIZE, with_masks=False)
    index = {item.stem: i for i, item in enumerate(dataset.items[group])}
    return to_tensor_batch([dataset.image(group, index[stem]) for stem in stems])[0]


def official_order(official: dict) -> list[str]:
    return [Path(str(name)).stem for name in official["eval_order"]]


def test_state_dict_matches_the_official_key_list(official_keys: list) -> None:
    ours = gconet_plus.build_model({"pretrained": False}).state_dict()
    assert [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in ours.items()
    ] == official_keys
    assert len(official_keys) == 237


def test_parameters_and_frozen_backbone() -> None:
    model = gconet_plus.build_model({"pretrained": False})
    assert sum(p.numel() for p in model.parameters()) == 18_415_048  # models-spec.md section 2.4
    assert sum(p.numel() for p in model.bb.parameters()) == 14_723_136
    assert not any(p.requires_grad for p in model.bb.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("bb."))


@pytest.mark.parametrize("wrap", ["bare", "checkpoint", "dataparallel"])
def test_released_checkpoint_formats_load_strictly(official_keys: list, tmp_path: Path, wrap: str) -> None:
    state = {
        key: (torch.randn(shape) if dtype == "float32" else torch.tensor(3))
        for key, shape, dtype in official_keys
    }
    payload = {
        "bare": state,
        "checkpoint": {"epoch": 350, "state_dict": state, "scheduler": {}},
        "dataparallel": {f"module.{key}": value for key, value in state.items()},
    }[wrap]
    path = tmp_path / "ultimate_duts_cocoseg.pth"
    torch.save(payload, path)
    _, model, cfg, backbone = load_checkpoint(path, "gconet_plus")
    assert cfg["size"] == 256 and backbone == "external-checkpoint"
    assert torch.equal(model.db_output_decoder.thresh[6].weight, state["db_output_decoder.thresh.6.weight"])
    assert torch.equal(getattr(model.bb.conv5, "41").running_var, state["bb.conv5.41.running_var"])


def test_a_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    from cosalbench.errors import CosalbenchError

    path = tmp_path / "final_gconet.pth"
    torch.save({"toplayer.0.weight": torch.zeros(64, 512, 1, 1)}, path)
    with pytest.raises(CosalbenchError, match="does not fit the gconet_plus architecture"):
        load_checkpoint(path, "gconet_plus")


@pytest.mark.parametrize(
    ("scales", "key", "dtype", "tolerance"),
    [(SMOOTH, "eval_maps", torch.float64, 1e-5), (STEEP, "eval_maps_steep", torch.float32, 1e-4)],
)
def test_eval_maps_match_the_official_code(
    official: dict, scales: dict, key: str, dtype: torch.dtype, tolerance: float
) -> None:
    """float64 for the smooth maps, independent of threads and CPU kernels (measured max |diff| 0.0).

    float32 for the steep ones, whose k = 50 fallback is triggered by float32's overflow of exp. In one
    process ours and the release agree exactly; across processes float32 rounding, amplified by the step,
    differs by up to 3.7e-5 (measured), hence 1e-4 -- far below what a wrong fallback choice makes."""
    model = seeded_model(scales).to(dtype)
    images = group_tensor("hopper", official_order(official)).to(dtype)
    with torch.no_grad():
        ours = gconet_plus.predict_group(model, images, {}).float().numpy()
        features = model.bb(images)
        p1 = gconet_plus.upsample(model.decoder_features(features, model.co_x5(features[4])[0]), (SIZE, SIZE))
        overflow = gconet_plus.db_overflows(*model.db_output_decoder.maps(p1))
    assert overflow == (scales is STEEP)  # the steep weights exercise the release's k = 50 fallback
    assert float(np.abs(ours - official[key]).max()) <= tolerance
    assert float(official[key].std()) > 0.2  # not degenerate


@pytest.mark.parametrize(
    ("scales", "dtype", "tolerance"), [(SMOOTH, torch.float64, 1e-9), (STEEP, torch.float32, 1e-4)]
)
def test_chunked_prediction_equals_one_pass(scales: dict, dtype: torch.dtype, tolerance: float) -> None:
    model = seeded_model(scales).to(dtype)
    images = group_tensor("hopper", ["a", "b", "c"]).to(dtype)
    whole = predict_images(gconet_plus, model, images, {}, None)
    for chunk in (1, 2):
        context = gconet_plus.group_context(model, images, {"predict_chunk": chunk})
        assert context[1] == (scales is STEEP)  # the fallback is decided over the whole group
        chunked = predict_images(gconet_plus, model, images, {}, chunk)
        assert float((chunked - whole).abs().max()) <= tolerance


def test_db_step_function_matches_the_release(official: dict) -> None:
    shrink, thresh = torch.from_numpy(official["db_shrink"]), torch.from_numpy(official["db_thresh"])
    assert gconet_plus.db_overflows(shrink, thresh)
    torch.testing.assert_close(gconet_plus.db_step(shrink, thresh), torch.from_numpy(official["db_overflow"]))
    plain = gconet_plus.db_step(0.5 + 0.001 * (shrink - 0.5), thresh * 0 + 0.5)
    torch.testing.assert_close(plain, torch.from_numpy(official["db_plain"]))


def test_training_loss_matches_the_official_train_step(official: dict) -> None:
    model = seeded_model(SMOOTH).double().train()
    images = torch.cat([group_tensor("hopper", ["a", "b"]), group_tensor("present", ["x", "y"])]).double()
    masks = (torch.from_numpy(official["train_masks_u8"]).float() / 255.0).double()
    labels = torch.from_numpy(official["train_labels"])
    outputs = model(images)
    assert float((outputs.maps[-1].detach() - torch.from_numpy(official["train_map"])).abs().max()) <= 1e-5
    parts = gconet_plus.loss_parts(outputs, masks, labels, {})
    w = gconet_plus.LOSS_WEIGHTS
    ours = [
        w["bce"] * parts["bce"] + w["iou"] * parts["iou"] + w["triplet"] * parts["triplet"],
        w["triplet"] * parts["triplet"],
        w["cls"] * parts["cls"],
        w["contrast"] * parts["contrast"],
        w["cls_mask"] * parts["cls_mask"],
        gconet_plus.weighted_total(parts, {}),
    ]
    expected = official["train_losses"]  # sal (incl. triplet), triplet, cls, contrast, cls_mask, total
    for value, reference in zip(ours, expected, strict=True):
        assert float(value.detach()) == pytest.approx(float(reference), rel=1e-6, abs=1e-5)
    parts["loss"] = gconet_plus.weighted_total(parts, {})
    parts["loss"].backward()
    assert model.db_output_decoder.thresh[0].weight.grad is not None
    assert getattr(model.bb.conv5, "40").weight.grad is None


def test_predicted_pngs_within_one_grey_level_of_the_official_ones(tmp_path: Path) -> None:
    model = seeded_model(SMOOTH)
    recipe = {"model": "gconet_plus", "size": SIZE, "backbone": "vgg16_bn", "num_classes": 291}
    summary = predict_seeded("gconet_plus", model.state_dict(), recipe, DATA, tmp_path / "preds")
    assert_pngs_match_official(
        summary, tmp_path / "preds" / "gconet_plus" / "Tiny", FIXTURES / "official_png" / "Tiny", 5, 3
    )


def test_joint_batches_follow_the_release_loop(tmp_path: Path) -> None:
    cfg = {"joint_train_set": "Tiny", "size": 32, "group_size": 26, "augment": True}
    dataset = GroupDataset(DATA, "Tiny", 32)
    assert gconet_plus.prepare_config({**cfg, "num_classes": "auto"}, dataset)["num_classes"] == 2
    with pytest.raises(ValueError, match="num_classes"):
        gconet_plus.prepare_config({**cfg, "num_classes": 1}, dataset)
    batches = list(gconet_plus.make_batches(dataset, cfg, np.random.default_rng(0)))
    assert len(batches) == 2  # min(#groups of both sets)
    assert [int(b["labels"][0]) for b in batches] == [0, 1]  # the first set in folder order
    for batch in batches:
        n = batch["images"].shape[0] // 2
        assert n == 2 and batch["joint_images"].shape == (4, 3, 32, 32)
        assert float(batch["masks"].min()) >= 0 and float(batch["masks"].max()) <= 1
    model = gconet_plus.build_model({"pretrained": False}).train()
    parts = gconet_plus.training_loss(model, batches[0], {})
    alone = [
        gconet_plus.training_loss(
            model,
            {
                k.removeprefix(p): v
                for k, v in batches[0].items()
                if k.startswith(p) and (p or not k.startswith("joint_"))
            },
            {},
        )
        for p in ("", "joint_")
    ]
    total = float(parts["loss"].detach())
    assert total == pytest.approx(float((alone[0]["loss"] + alone[1]["loss"]).detach()), rel=1e-4)


def test_train_reference_runs_one_joint_step(tmp_path: Path) -> None:
    from reference_models.train import resolve_recipe, train

    overrides = [
        "size=32",
        "group_size=2",
        "joint_train_set=Tiny",
        "epochs=1",
        "prefetch=0",
        "validation.groups=0",  # two groups: none to hold out
    ]
    flags = {
        "data_root": str(DATA),
        "train_set": "Tiny",
        "max_steps": 1,
        "pretrained": False,
        "device": "cpu",
    }
    cfg = resolve_recipe("gconet_plus", None, overrides, flags)
    summary = train(cfg, tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert record["step"] == 1 and np.isfinite(record["loss"])
    assert set(record) >= {"bce", "iou", "triplet", "cls", "contrast", "cls_mask"}
    assert summary["model"] == "gconet_plus"
    _, model, cfg2, backbone = load_checkpoint(tmp_path / "run" / "final.pth", "gconet_plus")
    assert cfg2["size"] == 32 and backbone == "random-init"
