"""MCCL: state dict vs the official one, and outputs vs the official code run on the same name-seeded weights.

The fixtures in tests/fixtures/mccl/ were produced by running ZhengPeng7/MCCL@40ad44c on the CPU (see
tests/fixtures/README.md): its key list, its float64 eval logits for the group ``Tiny/hopper`` at 64 x 64
through its own test loader (plus the PVTv2-B2 stage-4 map and the GCAM consensus), its train-mode forward
on the batch [hopper a, b; present x, y] at 32 x 32, and the PNGs its test.py writes. The input images are
GCoNet+'s fixture group (tests/fixtures/gconet_plus/data).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosalbench.errors import CosalbenchError  # noqa: E402
from reference_models import mccl  # noqa: E402
from reference_models.data import GroupDataset, to_tensor_batch  # noqa: E402
from reference_models.predict import (  # noqa: E402
    load_checkpoint,
    predict_images,
    to_original_size,
)
from reference_models.pvt import StochasticDepth  # noqa: E402
from tests.name_seeded import name_seeded_state  # noqa: E402
from tests.official_fixtures import assert_pngs_match_official, official_outputs, predict_seeded  # noqa: E402
from tests.official_fixtures import official_keys as read_official_keys  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "mccl"
DATA = Path(__file__).parent / "fixtures" / "gconet_plus" / "data"
EVAL_SIZE, TRAIN_SIZE = 64, 32


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """float64 depth-wise convs take torch's per-channel slow path (~20,000 tiny convs per forward); with two
    threads each one synchronises them, 18x slower on a busy machine (measured 26.6 s vs 1.46 s per pass)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    return official_outputs(FIXTURES)


@pytest.fixture(scope="module")
def official_keys() -> list[tuple[str, tuple[int, ...], str]]:
    return read_official_keys(FIXTURES)


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    """The name-seeded weights the fixture script loaded into the official model (built once: 27 M values)."""
    return name_seeded_state(mccl.build_model({}).state_dict())


@pytest.fixture(scope="module")
def model64(seeded_state: dict) -> mccl.MCCL:
    model = mccl.build_model({})
    model.load_state_dict(seeded_state, strict=True)
    return model.double().eval()


def group_tensor(group: str, stems: list[str], size: int) -> torch.Tensor:
    """cosalbench's own test pipeline (the predictor's): decode, PIL BILINEAR resize, ImageNet normalise."""
    dataset = GroupDataset(DATA, "Tiny", size, with_masks=False)
    index = {item.stem: i for i, item in enumerate(dataset.items[group])}
    return to_tensor_batch([dataset.image(group, index[stem]) for stem in stems])[0]


def official_order(official: dict) -> list[str]:
    """The release loader's ``os.listdir`` order of the hopper group (the consensus mean's summation order)."""
    return [Path(str(name)).stem for name in official["eval_order"]]


def max_diff(ours: torch.Tensor, theirs: np.ndarray) -> float:
    return float(np.abs(ours.detach().double().numpy() - theirs).max())


def test_state_dict_matches_the_official_key_list(seeded_state: dict, official_keys: list) -> None:
    ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in seeded_state.items()]
    assert ours == official_keys
    assert len(official_keys) == 416


def test_parameter_counts(model64: mccl.MCCL) -> None:
    assert sum(p.numel() for p in model64.parameters()) == 27_036_609
    # PVTv2-B2 without its ImageNet head (25.36 M with it: + 512 * 1000 + 1000)
    assert sum(p.numel() for p in model64.bb.parameters()) == 24_849_856


def test_eval_outputs_match_the_official_code_in_float64(model64: mccl.MCCL, official: dict) -> None:
    """Measured: logits max |diff| 5.4e-14, stage 4 1.8e-14, consensus 2.4e-15."""
    images = group_tensor("hopper", official_order(official), EVAL_SIZE).double()
    with torch.no_grad():
        x4 = model64.bb(images)[3]
        consensus = model64.co_x4.consensus(x4)
        logits = mccl.predict_group(model64, images, {})
    assert max_diff(x4[0], official["eval_x4_first"]) <= 1e-9
    assert max_diff(consensus.flatten(), official["eval_consensus"]) <= 1e-9
    assert max_diff(logits, official["eval_logits"]) <= 1e-9
    assert float(torch.sigmoid(logits).std()) > 0.3  # not degenerate


def test_eval_logits_in_float32_match_to_rounding(model64: mccl.MCCL, official: dict) -> None:
    """float32 vs the official float64 logits (|logit| up to 13): measured 5.1e-5, float32 rounding."""
    model = copy.deepcopy(model64).float()
    images = group_tensor("hopper", official_order(official), EVAL_SIZE)
    logits = mccl.predict_group(model, images, {})
    assert max_diff(logits, official["eval_logits"]) <= 5e-4


def test_train_mode_forward_matches_the_official_code(model64: mccl.MCCL, official: dict) -> None:
    """Batch statistics in BN, one consensus per group of the [2 + 2] batch; stochastic depth off on both sides."""
    model = model64.train()
    try:
        for module in model.modules():
            if isinstance(module, StochasticDepth):
                module.p = 0.0
        images = torch.cat(
            [group_tensor("hopper", ["a", "b"], TRAIN_SIZE), group_tensor("present", ["x", "y"], TRAIN_SIZE)]
        ).double()
        with torch.no_grad():
            maps, weighted = model(images)
        assert max_diff(maps[-1], official["train_logits"]) <= 1e-9
        assert max_diff(weighted, official["train_weighted_x4"]) <= 1e-9
    finally:
        model.eval()


def test_chunked_prediction_equals_one_pass(model64: mccl.MCCL, official: dict) -> None:
    images = group_tensor("hopper", official_order(official), EVAL_SIZE).double()
    whole = predict_images(mccl, model64, images, {}, None)
    chunked = predict_images(mccl, model64, images, {}, 2)  # chunks [2, 1] share the group's consensus
    assert float((chunked - whole).abs().max()) <= 1e-9
    alone = torch.cat([mccl.predict_group(model64, part, {}) for part in images.split(2)])
    assert float((alone - whole).abs().max()) > 1e-3  # a per-chunk consensus would differ


def test_logits_are_resized_before_the_sigmoid() -> None:
    """MCCL's test.py: sigmoid(resize(logits)); resizing probabilities would blur a step by many grey levels."""
    logits = torch.tensor([[[[-6.0, 6.0]]]])
    ours = to_original_size(logits, [(1, 5)], logits=True)[0]
    expected = (torch.sigmoid(torch.tensor([-6.0, -3.0, 0.0, 3.0, 6.0])) * 255).to(torch.uint8).numpy()
    assert ours.tolist() == [expected.tolist()]
    probabilities = to_original_size(torch.sigmoid(logits), [(1, 5)])[0]
    assert int(np.abs(probabilities.astype(int) - ours.astype(int)).max()) > 50


def test_released_checkpoint_loads_strictly(
    official_keys: list, seeded_state: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A bare state dict under the release's key names (what its train.py saves) loads with the default recipe."""
    path = tmp_path_factory.mktemp("release") / "mccl_released.pth"
    torch.save(seeded_state, path)
    _, model, cfg, backbone = load_checkpoint(path, "mccl")
    assert cfg["size"] == 256 and backbone == "external-checkpoint"
    assert torch.equal(model.bb.block3[5].attn.kv.weight, seeded_state["bb.block3.5.attn.kv.weight"])
    assert torch.equal(model.co_x4.all_attention.conv6.bias, seeded_state["co_x4.all_attention.conv6.bias"])
    wrapped = {"state_dict": {f"module.{key}": value for key, value in seeded_state.items()}}
    assert list(mccl.adapt_state_dict(wrapped)) == [key for key, _, _ in official_keys]


def test_a_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ultimate_duts_cocoseg.pth"
    torch.save({"bb.conv1.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(CosalbenchError, match="does not fit the mccl architecture"):
        load_checkpoint(path, "mccl")


def test_predict_end_to_end_writes_pngs_within_one_grey_level(seeded_state: dict, tmp_path: Path) -> None:
    recipe = {"model": "mccl", "size": EVAL_SIZE, "backbone": "pvt_v2_b2"}
    summary = predict_seeded("mccl", seeded_state, recipe, DATA, tmp_path / "preds")
    assert_pngs_match_official(
        summary, tmp_path / "preds" / "mccl" / "Tiny", FIXTURES / "official_png" / "Tiny", 5, 5
    )


def test_train_reference_refuses_mccl() -> None:
    from reference_models.train import resolve_recipe

    with pytest.raises(CosalbenchError, match="mccl is predict-only"):
        resolve_recipe("mccl", None, [], {})


def test_mccl_is_registered_as_predict_only() -> None:
    from cosalbench.commands.zoo import card

    item = card("mccl")
    assert item.training is False and item.input_size == 256
    assert item.official_code == "ZhengPeng7/MCCL@40ad44c"
    assert item.reported[0].datasets == {"CoSOD3k": (0.860,)}


def test_a_missing_checkpoint_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(CosalbenchError) as caught:
        load_checkpoint(tmp_path / "mccl.pth", "mccl")
    assert "checkpoint not found" in str(caught.value) and "ZhengPeng7/MCCL" in str(caught.value)


def test_cli_predict_mccl_without_its_checkpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from cosalbench.cli import main

    missing = tmp_path / "mccl.pth"
    with pytest.raises(SystemExit) as caught:
        main(["predict", "mccl", "--checkpoint", str(missing), "--dataset", "CoCA", "--out", str(tmp_path)])
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"cosalbench: error: {missing}: checkpoint not found (download"
    )
