"""GT-major scoring: every method of a dataset scored in one GT pass gives the files of one-by-one runs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench import io, layout
from cosalbench.datasets import synth
from cosalbench.metrics import protocols
from cosalbench.metrics.evaluate import evaluate_predictions

SPEC = synth.SynthSpec(name="Tiny", n_groups=3, images_per_group=4, height=40, width=56, seed=5)
METHODS = ("blur", "noisy", "small")


def _prediction(method: str, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if method == "blur":
        return cv2.GaussianBlur(mask, (0, 0), sigmaX=2)
    if method == "noisy":
        return np.clip(mask * 0.7 + rng.uniform(0, 80, mask.shape), 0, 255).astype(np.uint8)
    small = cv2.resize(mask, (mask.shape[1] // 2, mask.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return small  # half size: resized to the GT by the protocol


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gtmajor")
    data = synth.write_dataset(root / "data", SPEC)
    rng = np.random.default_rng(0)
    for index, sample in enumerate(synth.generate(SPEC)):
        for method in METHODS:
            if method == "noisy" and index % 5 == 1:
                continue  # some predictions missing for one method only
            folder = layout.prediction_dir(root / "preds", method, "Tiny") / sample.group
            io.write_png(folder / f"{sample.stem}.png", _prediction(method, sample.mask, rng))
    return root, data


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("protocol", "workers"), [("pysodmetrics", 1), ("cosal-matlab", 2), ("eval-co-sod", 1)]
)
def test_all_methods_together_equal_one_by_one(
    folders: tuple[Path, Path], protocol: str, workers: int
) -> None:
    root, data = folders
    together, alone = root / f"together-{protocol}", root / f"alone-{protocol}"
    options = {"data_root": data, "protocol": protocol, "wfm": True, "progress": False}
    evaluate_predictions(root / "preds", ["Tiny"], out=together, workers=workers, **options)
    for method in METHODS:
        evaluate_predictions(root / "preds" / method, ["Tiny"], out=alone, workers=1, **options)
    written = _files(together)
    assert len(written) == 3 * len(METHODS)  # JSON, CSV and input fingerprint per method
    assert written == _files(alone)


def test_each_gt_is_decoded_once(folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, data = folders
    reads: list[str] = []
    original = protocols.PySODMetricsProtocol.read_gt

    def counting(self, path):
        reads.append(str(path))
        return original(self, path)

    monkeypatch.setattr(protocols.PySODMetricsProtocol, "read_gt", counting)
    docs = evaluate_predictions(root / "preds", ["Tiny"], data_root=data, progress=False)
    assert len(docs) == len(METHODS)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == SPEC.n_groups * SPEC.images_per_group
