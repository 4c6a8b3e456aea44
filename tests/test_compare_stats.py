"""Paired comparison: exact re-aggregation from groups, bootstrap interval, permutation test, wins."""

from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pytest
from scipy import stats

from cosalbench.cli import main
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.compare import (
    batch_metric,
    compare_results,
    comparison_json,
    format_comparison,
    group_arrays,
)
from tests.test_report_docs import SCALARS, image_doc, synthetic_images, table_doc, write_doc

ALL = list(SCALARS)


def shifted(images: dict, deltas: dict[str, float]) -> dict:
    """The same images with S and every F-curve point raised by ``deltas[group]``."""
    out = {}
    for group, rows in images.items():
        d = deltas[group]
        out[group] = [({**s, "sm": s["sm"] + d}, {**c, "fm": [v + d for v in c["fm"]]}) for s, c in rows]
    return out


@pytest.mark.parametrize("aggregation", ["image_mean", "group_mean"])
def test_recomputation_from_groups_equals_the_document(aggregation):
    doc = image_doc("m", synthetic_images(3, [2, 5, 3, 4]))
    groups = sorted(doc["groups"])
    arrays = group_arrays(doc, groups, ALL)
    weights = np.ones((1, len(groups))) * (arrays.n_images if aggregation == "image_mean" else 1.0)
    for metric in ALL:
        assert batch_metric([(weights, arrays)], metric)[0] == pytest.approx(
            doc[aggregation][metric], abs=1e-12
        ), metric


def test_a_resample_equals_the_dataset_it_describes():
    """Counts (2, 0, 1, 0) over groups = a dataset holding group 0 twice and group 2 once."""
    images = synthetic_images(5, [2, 5, 3, 4])
    doc = image_doc("m", images)
    resampled = image_doc("r", {"a": images["g00"], "b": images["g00"], "c": images["g02"]})
    arrays = group_arrays(doc, sorted(doc["groups"]), ALL)
    counts = np.array([[2.0, 0.0, 1.0, 0.0]])
    for aggregation, size in (("image_mean", arrays.n_images), ("group_mean", 1.0)):
        for metric in ALL:
            got = batch_metric([(counts * size, arrays)], metric)[0]
            assert got == pytest.approx(resampled[aggregation][metric], abs=1e-12), (aggregation, metric)


@pytest.mark.parametrize("aggregation", ["image_mean", "group_mean"])
def test_batch_equals_reaggregate_of_the_resampled_groups(aggregation):
    """Each bootstrap weight row gives what metrics-core's ``reaggregate`` gives for the resampled
    group list (repeated groups entered under new names)."""
    from cosalbench.metrics.aggregate import reaggregate

    doc = image_doc("m", synthetic_images(12, [2, 5, 3, 4, 6, 1]))
    names = sorted(doc["groups"])
    arrays = group_arrays(doc, names, ALL)
    counts = np.random.default_rng(0).multinomial(len(names), np.full(len(names), 1 / len(names)), size=5)
    size = arrays.n_images if aggregation == "image_mean" else 1.0
    batch = {metric: batch_metric([(counts * size, arrays)], metric) for metric in ALL}
    for row, count in enumerate(counts):
        resampled = {
            f"{g}#{k}": doc["groups"][g] for g, c in zip(names, count, strict=True) for k in range(c)
        }
        expected = reaggregate(resampled, aggregation, "pysodmetrics")["metrics"]
        for metric in ALL:
            assert batch[metric][row] == pytest.approx(expected[metric], abs=1e-12), (row, metric)


def test_constant_shift_gives_that_difference_in_every_resample():
    images = synthetic_images(1, [3, 4, 2, 5, 3, 4, 2, 3])
    a = image_doc("A", images)
    b = image_doc("B", shifted(images, dict.fromkeys(images, 0.03)))
    result = compare_results(a, b, ["sm", "maxfm", "meanfm", "mae"], n_boot=500, n_perm=2000, seed=1)
    rows = {row["metric"]: row for row in result["metrics"]}
    for metric in ("sm", "maxfm", "meanfm"):
        row = rows[metric]
        assert row["diff"] == pytest.approx(0.03, abs=1e-12)
        assert row["ci_low"] == pytest.approx(0.03, abs=1e-12) and row["ci_high"] == pytest.approx(
            0.03, abs=1e-12
        )
        assert (row["b_wins"], row["a_wins"], row["ties"]) == (8, 0, 0)
        # 2 of the 2^8 label swaps are as extreme as the observed one
        assert row["p_value"] == pytest.approx(2 / 256, abs=0.01)
    assert rows["mae"]["diff"] == 0.0 and rows["mae"]["p_value"] == 1.0 and rows["mae"]["ties"] == 8
    assert rows["sm"]["a"] == pytest.approx(a["image_mean"]["sm"]) and rows["sm"]["b"] == pytest.approx(
        b["image_mean"]["sm"]
    )
    assert result["notes"] == [
        "with 8 groups no two-sided permutation p-value can fall below 0.00781 and the bootstrap interval is coarse"
    ]


def test_noisy_shift_interval_contains_the_true_difference_and_is_reproducible():
    noise = np.random.default_rng(7).normal(0.0, 0.02, 40)
    images = synthetic_images(2, [4] * 40)
    # per-group shifts averaging exactly 0.03: the true difference in S on these images
    deltas = {g: 0.03 + float(n) for g, n in zip(sorted(images), noise - noise.mean(), strict=True)}
    a, b = image_doc("A", images), image_doc("B", shifted(images, deltas))
    first = compare_results(a, b, ["sm", "maxfm"], n_boot=2000, n_perm=2000, seed=11)
    assert first == compare_results(a, b, ["sm", "maxfm"], n_boot=2000, n_perm=2000, seed=11)
    other = compare_results(a, b, ["sm", "maxfm"], n_boot=2000, n_perm=2000, seed=12)
    assert other["metrics"][0]["ci_low"] != first["metrics"][0]["ci_low"]
    sm = first["metrics"][0]
    assert sm["diff"] == pytest.approx(0.03, abs=1e-12)  # equal group sizes: the mean shift
    assert sm["ci_low"] < 0.03 < sm["ci_high"]
    # the width matches the normal approximation 2 * 1.96 * sd / sqrt(G)
    expected = 2 * 1.96 * np.std(list(deltas.values()), ddof=1) / np.sqrt(40)
    assert sm["ci_high"] - sm["ci_low"] == pytest.approx(expected, rel=0.15)
    assert sm["p_value"] < 0.001 and first["metrics"][1]["p_value"] < 0.001


def group_level_doc(method: str, sm: np.ndarray) -> dict:
    """A document of one-image groups whose only metric is S (values ``sm``)."""
    doc = table_doc(method, "Synth", {"sm": float(np.mean(sm))}, group_values={"sm": float(np.mean(sm))})
    doc["groups"] = {
        f"g{i:03d}": {"n_images": 1, "metrics": {"sm": float(v)}, "curves": {}} for i, v in enumerate(sm)
    }
    doc["n_images"] = doc["n_groups"] = len(sm)
    return doc


def test_bootstrap_coverage_and_permutation_calibration():
    """Simulated pairs of 40 groups: the 95% interval holds the population shift about 95% of the
    time (200 trials), and with no difference the test rejects at 5% about 5% of the time (400)."""
    rng = np.random.default_rng(0)
    covered = rejected = 0
    for trial in range(400):
        base = rng.uniform(0.4, 0.9, 40)
        a = group_level_doc("A", base)
        if trial < 200:
            b = group_level_doc("B", base + rng.normal(0.02, 0.05, 40))
            row = compare_results(a, b, ["sm"], n_boot=1000, n_perm=1, seed=trial)["metrics"][0]
            covered += row["ci_low"] <= 0.02 <= row["ci_high"]
        null_b = group_level_doc("B", base + rng.normal(0.0, 0.05, 40))
        rejected += (
            compare_results(a, null_b, ["sm"], n_boot=1, n_perm=300, seed=trial)["metrics"][0]["p_value"]
            < 0.05
        )
    assert 0.88 <= covered / 200 <= 0.99
    assert 0.01 <= rejected / 400 <= 0.09


def test_no_difference_gives_a_large_p_value():
    images = synthetic_images(4, [3] * 12)
    a = image_doc("A", images)
    same = compare_results(
        a, image_doc("B", images), ["sm", "maxfm", "maxem", "auc"], n_boot=200, n_perm=1000
    )
    for row in same["metrics"]:
        assert row["diff"] == 0.0 and row["p_value"] == 1.0 and row["ties"] == 12
        assert row["ci_low"] == row["ci_high"] == 0.0
    # half the groups better by 0.05, half worse: no overall difference in S
    deltas = {g: (0.05 if i % 2 else -0.05) for i, g in enumerate(sorted(images))}
    row = compare_results(a, image_doc("B", shifted(images, deltas)), ["sm"], n_boot=500, n_perm=1000)[
        "metrics"
    ][0]
    assert row["diff"] == pytest.approx(0.0, abs=1e-12)
    assert row["p_value"] > 0.2 and row["ci_low"] < 0 < row["ci_high"]
    assert (row["b_wins"], row["a_wins"], row["ties"]) == (6, 6, 0)


def test_lower_is_better_counts_wins_for_the_lower_mae():
    images = synthetic_images(6, [3] * 6)
    b_images = {g: [({**s, "mae": s["mae"] - 0.01}, c) for s, c in rows] for g, rows in images.items()}
    row = compare_results(image_doc("A", images), image_doc("B", b_images), ["mae"], n_boot=100, n_perm=100)[
        "metrics"
    ][0]
    assert row["diff"] == pytest.approx(-0.01) and (row["b_wins"], row["a_wins"]) == (6, 0)


def test_refusals_and_notes():
    images = synthetic_images(8, [3, 3, 3, 3])
    a = image_doc("A", images)
    with pytest.raises(CosalbenchError, match="dataset differs"):
        compare_results(a, image_doc("B", images, dataset="CoCA"))
    with pytest.raises(CosalbenchError, match="protocol differs"):
        compare_results(a, image_doc("B", images, protocol="eval-co-sod"))
    fewer = dict(images, g01=images["g01"][:2])
    with pytest.raises(CosalbenchError, match="group 'g01' has 2 images here but 3"):
        compare_results(a, image_doc("B", fewer))
    a_missing, b_missing = image_doc("A", fewer), image_doc("B", fewer)
    a_missing["missing_predictions"], b_missing["missing_predictions"] = ["g01/0002"], ["g01/0001"]
    with pytest.raises(
        CosalbenchError, match=r"scored on different images: 2 image\(s\) .* \(first: g01/0001\)"
    ):
        compare_results(a_missing, b_missing)
    no_curves = copy.deepcopy(a)
    del no_curves["groups"]["g00"]["curves"]["fm"]
    with pytest.raises(CosalbenchError, match="per-group 'fm' curves are missing"):
        compare_results(no_curves, a, ["maxfm"])
    subset = image_doc("B", {g: images[g] for g in ("g00", "g01", "g02")})
    result = compare_results(a, subset, ["sm"], n_boot=50, n_perm=50)
    assert result["n_groups"] == 3 and result["notes"][0] == "1 group(s) only in A left out: g03"
    undefined = copy.deepcopy(a)
    undefined["image_mean"]["adpfm"] = None
    result = compare_results(undefined, a, ["adpfm", "sm"], n_boot=50, n_perm=50)
    assert [r["metric"] for r in result["metrics"]] == ["sm"]
    assert result["notes"][1:] == ["adpfm is not defined under protocol pysodmetrics; skipped"]


def test_compare_cli_json_and_text(tmp_path, capsys):
    images = synthetic_images(9, [3] * 10)
    deltas = {g: 0.02 + 0.01 * (i % 3) for i, g in enumerate(sorted(images))}
    path_a = write_doc(tmp_path / "res", image_doc("A", images))
    write_doc(tmp_path / "res", image_doc("B", shifted(images, deltas)))
    argv = [
        "compare",
        str(path_a),
        str(tmp_path / "res" / "B"),
        "--metrics",
        "sm,maxfm",
        "--n-boot",
        "300",
        "--n-perm",
        "300",
    ]
    main([*argv, "--json", "--seed", "3"])
    first = json.loads(capsys.readouterr().out)
    main([*argv, "--json", "--seed", "3"])
    assert json.loads(capsys.readouterr().out) == first
    assert first["method_a"] == "A" and first["method_b"] == "B" and first["n_images"] == 30
    out = tmp_path / "cmp.txt"
    main([*argv, "--seed", "3", "--out", str(out)])
    assert out.read_text(encoding="utf-8") == format_comparison(first)
    text = out.read_text(encoding="utf-8").splitlines()
    assert text[0] == "Synth: B = B vs A = A  (protocol pysodmetrics, image_mean, 10 groups, 30 images)"
    assert text[4].split()[:4] == [
        "Sm",
        "↑",
        f"{first['metrics'][0]['a']:.4f}",
        f"{first['metrics'][0]['b']:.4f}",
    ]
    with pytest.raises(SystemExit) as info:
        main(["compare", str(tmp_path / "res"), str(path_a)])
    assert info.value.code == 2
    assert "holds 2 results" in capsys.readouterr().err


def test_nan_metric_propagates_and_json_stays_strict():
    images = synthetic_images(10, [3] * 5)
    a, b = image_doc("A", images), image_doc("B", images)
    # an image of g00 made A's S NaN: evaluate writes null and lists the image under nan_images
    a["groups"]["g00"]["metrics"]["sm"] = None
    a["image_mean"]["sm"] = a["group_mean"]["sm"] = None
    a["nan_images"] = {"sm": ["g00/0001"]}
    result = compare_results(a, b, ["sm", "maxfm"], n_boot=50, n_perm=50)
    sm = result["metrics"][0]
    assert np.isnan(sm["a"]) and np.isnan(sm["diff"]) and np.isnan(sm["p_value"]) and np.isnan(sm["ci_low"])
    assert sm["ties"] == 4  # the NaN group is not counted
    parsed = json.loads(comparison_json(result))
    assert parsed["metrics"][0]["diff"] is None and parsed["metrics"][1]["diff"] == 0.0


def brute_force_p(differences: np.ndarray) -> float:
    """Two-sided sign-flip p of mean(d) by enumerating every sign pattern (the test's own oracle)."""
    observed = abs(differences.mean())
    flips = [
        abs(np.mean(np.array(signs) * differences))
        for signs in itertools.product((1, -1), repeat=len(differences))
    ]
    return float(np.mean(np.array(flips) >= observed - 1e-12))


@pytest.mark.parametrize("n_perm", [1, 200, 10_000])
def test_few_groups_get_the_exact_permutation_p_value(n_perm):
    """5 one-image groups: the issue's case (Monte-Carlo 0.0448 with --n-perm 200, below 2/2^5)."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 0.8, 5)
    differences = np.array([0.031, 0.012, -0.004, 0.025, 0.018])
    a, b = group_level_doc("A", base), group_level_doc("B", base + differences)
    result = compare_results(a, b, ["sm"], n_boot=100, n_perm=n_perm, seed=0)
    row = result["metrics"][0]
    assert result["p_method"] == "exact" and result["n_permutations"] == 32
    assert row["p_value"] == pytest.approx(brute_force_p(differences), abs=1e-12)
    scipy_p = stats.permutation_test(
        (base, base + differences),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf,
        vectorized=True,
    ).pvalue
    assert row["p_value"] == pytest.approx(scipy_p, abs=1e-12)
    assert row["p_value"] >= 2.0**-4  # never below the minimum the note prints
    assert "exact: all 32 label swaps of 5 groups" in format_comparison(result)


def test_many_groups_use_the_monte_carlo_estimate_never_below_the_exact_minimum():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.5, 0.8, 20)
    a, b = group_level_doc("A", base), group_level_doc("B", base + rng.uniform(0.01, 0.05, 20))
    result = compare_results(a, b, ["sm"], n_boot=10, n_perm=200, seed=0)
    p = result["metrics"][0]["p_value"]
    assert result["p_method"] == "monte-carlo" and result["n_permutations"] == 200
    # every shift is positive: no random swap but the identity is as extreme, so p is (0 + 1) / (200 + 1)
    assert p == pytest.approx(1 / 201) and p >= 2.0**-19
    assert "Monte-Carlo: 200 random label swaps" in format_comparison(result)


def test_a_metric_evaluate_did_not_compute_is_named_as_such():
    images = synthetic_images(8, [3, 3, 3, 3])
    a, b = image_doc("A", images), image_doc("B", images)
    a["image_mean"]["wfm"] = b["image_mean"]["wfm"] = None
    result = compare_results(a, b, ["sm", "wfm"], n_boot=10, n_perm=10)
    assert [r["metric"] for r in result["metrics"]] == ["sm"]
    assert "wfm was not computed for A (rerun 'cosalbench evaluate' with --wfm); skipped" in result["notes"]
    a["protocol"] = b["protocol"] = "eval-co-sod"  # whose reference never computes wF
    other = compare_results(a, b, ["sm", "wfm"], n_boot=10, n_perm=10)
    assert "wfm is not defined under protocol eval-co-sod; skipped" in other["notes"]
