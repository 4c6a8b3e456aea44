"""``cosalbench demo`` also writes the gallery figure and the HTML report, deterministically."""

from __future__ import annotations

from pathlib import Path

from cosalbench import demo, io
from cosalbench.datasets import synth

SMALL = synth.SynthSpec(name="Demo", n_groups=2, images_per_group=3, height=48, width=64, seed=0)


def test_demo_writes_gallery_and_report(tmp_path: Path) -> None:
    first = demo.run_demo(tmp_path / "a", progress=False, spec=SMALL)
    assert first.gallery == tmp_path / "a" / "gallery.png" and first.report == tmp_path / "a" / "report.html"
    assert io.read_bgr(first.gallery).shape[1] > 300
    page = first.report.read_text(encoding="utf-8")
    # 2 groups x 3 images x (image, GT, 4 methods' maps) as thumbnails
    assert page.count('src="data:image/png;base64,') == 2 * 3 * 6
    assert "Protocol: pysodmetrics; aggregation: image_mean" in page
    second = demo.run_demo(tmp_path / "b", progress=False, spec=SMALL)
    assert second.gallery.read_bytes() == first.gallery.read_bytes()
    assert second.report.read_text(encoding="utf-8") == page.replace(str(tmp_path / "a"), str(tmp_path / "b"))
