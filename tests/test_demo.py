"""``cosalbench demo`` end to end on a smaller synthetic set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cosalbench import demo, io
from cosalbench.cli import main
from cosalbench.datasets import synth

SMALL = synth.SynthSpec(name="Demo", n_groups=2, images_per_group=3, height=48, width=64, seed=0)


def test_demo_command_writes_everything_deterministically(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "DEMO_SPEC", SMALL)
    main(["demo", "--out", str(tmp_path / "a")])
    text = capsys.readouterr().out
    assert "Demo -- protocol pysodmetrics" in text and f"curves       {tmp_path / 'a' / 'curves.png'}" in text
    methods = ["blurry", "cbcs", "noisy", "shifted"]
    for method in methods:
        assert f"\n{method} " in text
        assert (tmp_path / "a" / "results" / method / "Demo.images.csv").is_file()
    assert (tmp_path / "a" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    output = demo.run_demo(tmp_path / "b", progress=False, spec=SMALL)
    assert [doc["method"] for doc in output.documents] == methods
    for method in methods:
        for name in ("Demo.json", "Demo.images.csv"):
            first = (tmp_path / "a" / "results" / method / name).read_bytes()
            assert (tmp_path / "b" / "results" / method / name).read_bytes() == first
    scores = {doc["method"]: doc["image_mean"] for doc in output.documents}
    assert len({round(s["maxfm"], 6) for s in scores.values()}) == 4  # the methods really differ
    assert scores["blurry"]["mae"] < scores["noisy"]["mae"]  # distractor responses cost MAE


def test_simulated_methods_are_imperfect_and_seeded(tmp_path: Path) -> None:
    methods = demo.write_simulated_predictions(tmp_path / "p", SMALL)
    assert methods == ["blurry", "shifted", "noisy"]
    first = sorted(p.read_bytes() for p in (tmp_path / "p").rglob("*.png"))
    demo.write_simulated_predictions(tmp_path / "q", SMALL)
    assert sorted(p.read_bytes() for p in (tmp_path / "q").rglob("*.png")) == first
    for sample in synth.generate(SMALL):
        for method in methods:
            path = tmp_path / "p" / method / "Demo" / sample.group / f"{sample.stem}.png"
            error = np.abs(io.read_gray(path).astype(int) - sample.mask).mean()
            assert 2 < error < 100  # imperfect, yet a prediction of this mask
