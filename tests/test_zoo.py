"""``cosalbench models``: the registry lists every reference model without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cosalbench.commands.zoo import MODEL_CARDS, card, model_names


def run(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from cosalbench.cli import main; sys.argv = ['cosalbench', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)


def test_cards_cover_exactly_the_torch_registry() -> None:
    source = (Path(__file__).parents[1] / "reference_models" / "registry.py").read_text()
    for name in model_names():
        assert f'"{name}": "reference_models.{name}"' in source
    assert card("GCoNet_Plus").input_size == 256


def test_listing_does_not_import_torch() -> None:
    code = (
        "import sys; from cosalbench.cli import main; sys.argv = ['cosalbench', 'models', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("NO-TORCH")
    cards = json.loads(result.stdout.strip().rsplit("\n", 1)[0])
    assert [item["name"] for item in cards] == list(MODEL_CARDS)
    plus = next(item for item in cards if item["name"] == "gconet_plus")
    assert plus["reported"][0]["datasets"]["CoCA"] == [0.814, 0.738, 0.637, 0.081]
    assert plus["training"] is True and plus["train_sets"] == ["DUTS_class", "COCO-SEG"]


def test_table_and_details() -> None:
    table = run("models")
    assert table.returncode == 0
    assert all(name in table.stdout for name in MODEL_CARDS)
    details = run("models", "gconet_plus")
    assert "ultimate_duts_cocoseg.pth" in details.stdout and "eval-co-sod" in details.stdout


def test_unknown_model_is_one_line_error() -> None:
    result = run("models", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cosalbench: error: unknown reference model 'nope' (choose one of {', '.join(MODEL_CARDS)})"
    ]
