"""Evaluate prediction folders against canonical ground truth.

Three steps: *plan* (resolve dataset names, find the method folders, pair every ground-truth mask
with its prediction by (group, stem)), *score* (decode and score images, chunked over a process
pool; only paths go to the workers and compact arrays come back) and *reduce* (aggregate the
per-image rows into one result document per method x dataset, see :mod:`cosalbench.metrics.results`).

PRED layouts: ``PRED`` is a *method folder* when it directly holds a folder for one of the requested
datasets (``PRED/<Dataset>/<group>/<stem>.png``; the method is named after ``PRED`` itself);
otherwise it is a *folder of methods* and every sub-folder holding a folder for a requested dataset
is evaluated (``PRED/<method>/<Dataset>/...``). Dataset folders match the canonical name, its case
variants and its registry aliases.

Nothing is dropped silently: the ground truth must match the dataset's manifest (or registry counts,
see :mod:`cosalbench.metrics.ground_truth`), every (group, stem) has at most one candidate file, an
unreadable entry where a file should be is an error, and the result set of a run reaches ``--out``
all together or not at all.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cosalbench import layout
from cosalbench.datasets import registry
from cosalbench.errors import CosalbenchError, from_os_error
from cosalbench.metrics import confusion, results
from cosalbench.metrics.aggregate import aggregate_groups
from cosalbench.metrics.allocator import keep_freed_memory
from cosalbench.metrics.fingerprint import job_fingerprint, stored_fingerprint, write_fingerprint
from cosalbench.metrics.ground_truth import GroundTruth, checked_ground_truth
from cosalbench.metrics.protocols import get_protocol
from cosalbench.metrics.score_table import ScoreTable
from cosalbench.parallel import process_pool, single_threaded
from cosalbench.provenance import recorded_provenance
from cosalbench.staging import check_output_folder, staged_outputs

# images per task sent to a worker: large enough to amortise IPC, small enough to balance the load
MAX_CHUNK = 64
LAYOUT_HINT = "expected PRED/<Dataset>/<group>/<stem>.png or PRED/<method>/<Dataset>/<group>/<stem>.png"


@dataclass(frozen=True)
class Pair:
    """One ground-truth mask and its prediction, keyed by (group, stem)."""

    group: str
    stem: str
    gt: Path
    pred: Path


@dataclass
class Job:
    """One (method, dataset) evaluation: the pairs to score and the predictions that are missing."""

    method: str
    dataset: str
    pred_dir: Path
    pairs: list[Pair]
    missing: list[str]
    gt_fields: dict[str, Any] = field(default_factory=dict)  # gt_complete and gt_check of its document
    provenance: dict[str, Any] | None = None  # of the checkpoint that made the maps (its prediction.json)


@dataclass
class Plan:
    """Everything to score, plus the (method, dataset) combinations without a prediction folder."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ground_truth: dict[str, GroundTruth] = field(default_factory=dict)


def resolve_dataset(name: str, data_root: Path) -> str:
    """Canonical spelling of ``name`` from the registry, or ``name`` itself when its GT folder exists.

    ``name`` must be a plain folder name (a trailing ``/`` is dropped).
    """
    name = layout.plain_name(name, "dataset")
    info = registry.lookup(name)
    if info is not None:
        return info.name
    if layout.gts_dir(data_root, name).is_dir():
        return name
    gts_root = layout.gts_dir(data_root, name).parent
    spelled = layout.list_groups(gts_root) if gts_root.is_dir() else []
    spelled = [folder for folder in spelled if folder.casefold() == name.casefold()]
    if len(spelled) == 1:
        return spelled[0]
    known = ", ".join(info.name for info in registry.all_datasets())
    raise CosalbenchError(
        layout.gts_dir(data_root, name),
        f"unknown dataset {name!r} and no such ground-truth folder",
        f"known datasets: {known}; or check --data-root",
    )


def _subfolders(folder: Path) -> list[Path]:
    return [folder / name for name in layout.list_groups(folder)]


def _dataset_dir(folder: Path, dataset: str) -> Path | None:
    """The sub-folder of ``folder`` holding ``dataset`` (exact name, other case, or a registry alias)."""
    exact = folder / dataset
    if exact.is_dir():
        return exact
    matches = []
    for sub in _subfolders(folder):
        info = registry.lookup(sub.name)
        if sub.name.lower() == dataset.lower() or (info is not None and info.name == dataset):
            matches.append(sub)
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches)
        raise CosalbenchError(folder, f"several folders could hold dataset {dataset}: {names}")
    return matches[0] if matches else None


def _method(folder: Path, name: str) -> tuple[str, Path]:
    """``(name, folder)``, refused unless ``name`` is a plain folder name (it names ``<out>/<method>``)."""
    try:
        return layout.plain_name(name, "method"), folder
    except CosalbenchError as exc:
        raise CosalbenchError(folder, exc.problem, "rename the folder") from exc


def _holds_dataset(folder: Path, datasets: Sequence[str]) -> bool:
    """Whether ``folder`` has an entry for one of ``datasets`` (a folder, or a broken link to refuse later)."""
    return any(_dataset_dir(folder, d) is not None or os.path.lexists(folder / d) for d in datasets)


def find_methods(pred_root: Path, datasets: Sequence[str]) -> list[tuple[str, Path]]:
    """``[(method, folder)]``: ``pred_root`` itself when it is a method folder, else its method sub-folders."""
    if not pred_root.is_dir():
        raise CosalbenchError(pred_root, "prediction folder not found", LAYOUT_HINT)
    if _holds_dataset(pred_root, datasets):
        return [_method(pred_root, pred_root.resolve().name)]
    methods = [_method(sub, sub.name) for sub in _subfolders(pred_root) if _holds_dataset(sub, datasets)]
    if not methods:
        raise CosalbenchError(pred_root, f"holds no prediction folder for {', '.join(datasets)}", LAYOUT_HINT)
    return methods


def refuse_data_folders(pred_root: Path, data_root: Path, datasets: Sequence[str]) -> None:
    """Refuse a PRED that is a data root, or a prediction folder that is the data's own GT or images.

    Passed by mistake, a data root would be evaluated as two methods, ``gts`` (a perfect score)
    and ``images`` (photos scored as maps).
    """
    if not pred_root.is_dir():
        return  # find_methods says so
    hint = "PRED is the folder of predictions (PRED/<method>/<Dataset>/...), e.g. the --out of predict"
    looks_like_root = (pred_root / "gts").is_dir() and any(
        (pred_root / sub).is_dir() for sub in ("images", "manifests")
    )
    if looks_like_root or pred_root.resolve() == data_root.resolve():
        raise CosalbenchError(pred_root, "is a data root (it holds gts/ and images/), not predictions", hint)
    data_folders = {
        folder.resolve()
        for name in datasets
        for folder in (layout.gts_dir(data_root, name), layout.images_dir(data_root, name))
    }
    for folder in (pred_root, *_subfolders(pred_root)):
        if folder.resolve() in data_folders or any(
            sub.resolve() in data_folders for sub in _subfolders(folder)
        ):
            raise CosalbenchError(folder, "is the data root's ground truth or images, not predictions", hint)


def prediction_extensions(pred_ext: str | None) -> tuple[str, ...]:
    """The extensions a prediction may have: all image extensions, or only ``pred_ext`` (``png``, ``.PNG``)."""
    if pred_ext is None:
        return layout.IMAGE_EXTENSIONS
    wanted = "." + pred_ext.lower().lstrip(".")
    if wanted not in layout.IMAGE_EXTENSIONS:
        known = ", ".join(e.lstrip(".") for e in layout.IMAGE_EXTENSIONS)
        raise CosalbenchError(
            None, f"--pred-ext {pred_ext!r} is not an image extension", f"use one of {known}"
        )
    return (wanted,)


def _group_listing(pred_dir: Path, group: str, extensions: Sequence[str]) -> layout.GroupListing:
    """What ``pred_dir/<group>`` holds; a missing folder holds nothing, an unusable entry there is an error."""
    folder = pred_dir / group
    if folder.is_dir():
        return layout.scan_images(folder, extensions)
    if os.path.lexists(folder):
        why = layout.entry_problem(folder) or "is a file, not a group folder"
        raise CosalbenchError(folder, why, "restore the group folder or remove the entry")
    return layout.GroupListing({}, {}, {})


def _prediction_for(listing: layout.GroupListing, group: str, stem: str) -> Path | None:
    """The one prediction file of (group, stem), None when there is none; ambiguous or bad entries raise."""
    if stem in listing.duplicates:
        first, *others = listing.duplicates[stem]
        raise CosalbenchError(
            first,
            f"{len(others) + 1} candidate predictions for {group}/{stem}: "
            + " and ".join(path.name for path in (first, *others)),
            "keep one file per (group, stem), or choose the extension with --pred-ext",
        )
    if stem in listing.unreadable:
        path, why = listing.unreadable[stem]
        raise CosalbenchError(path, why, "restore the prediction, or remove the entry to list it as missing")
    return listing.files.get(stem)


def pair_predictions(
    gt_items: Sequence[tuple[str, str, Path]],
    pred_dir: Path,
    extensions: Sequence[str] = layout.IMAGE_EXTENSIONS,
) -> tuple[list[Pair], list[str]]:
    """Pair each mask with ``pred_dir/<group>/<stem>.<ext>``; return pairs and missing keys.

    Two candidate files for one mask, or an unreadable entry (a broken link, a folder), are errors.
    """
    by_group = {
        group: _group_listing(pred_dir, group, extensions)
        for group in sorted({group for group, _, _ in gt_items})
    }
    pairs, missing = [], []
    for group, stem, gt_path in gt_items:
        pred = _prediction_for(by_group[group], group, stem)
        if pred is None:
            missing.append(f"{group}/{stem}")
        else:
            pairs.append(Pair(group, stem, gt_path, pred))
    if not pairs:
        if any(layout.list_images(pred_dir / group) for group in layout.list_groups(pred_dir)):
            problem = "no prediction matches a ground-truth (group, stem)"
        elif layout.list_images(pred_dir):
            problem = "predictions are not in group sub-folders"
        else:
            problem = "prediction folder holds no images"
        group, stem, _ = gt_items[0]
        raise CosalbenchError(pred_dir, problem, f"expected e.g. {pred_dir / group / stem}.png")
    return pairs, missing


def plan_evaluation(
    pred_root: str | Path,
    datasets: Sequence[str],
    data_root: str | Path | None = None,
    strict: bool = False,
    allow_incomplete_gt: bool = False,
    pred_ext: str | None = None,
) -> Plan:
    """Resolve datasets and methods, check the ground truth and pair every mask with its prediction.

    No image is decoded (a ``.png`` mask is checked to be complete by its first and last bytes).
    An incomplete ground-truth set is an error unless ``allow_incomplete_gt``; ``pred_ext`` limits
    predictions to one extension.
    """
    if not datasets:
        raise CosalbenchError(None, "no dataset given", "pass --dataset NAME (repeatable)")
    extensions = prediction_extensions(pred_ext)
    root = layout.resolve_data_root(data_root)
    names = list(dict.fromkeys(resolve_dataset(name, root) for name in datasets))
    refuse_data_folders(Path(pred_root), root, names)
    plan = Plan(ground_truth={name: checked_ground_truth(root, name, allow_incomplete_gt) for name in names})
    gt_items = {name: gt.items for name, gt in plan.ground_truth.items()}
    for method, folder in find_methods(Path(pred_root), names):
        for name in names:
            pred_dir = _dataset_dir(folder, name)
            if pred_dir is None and os.path.lexists(folder / name):
                why = layout.entry_problem(folder / name) or "is a file, not a prediction folder"
                raise CosalbenchError(folder / name, why, "restore the prediction folder or remove the entry")
            if pred_dir is None:
                if strict:
                    raise CosalbenchError(
                        folder / name, "prediction folder not found", "drop --strict to skip it"
                    )
                plan.skipped.append(f"{method}/{name}")
                continue
            pairs, missing = pair_predictions(gt_items[name], pred_dir, extensions)
            if missing and strict:
                first = pred_dir / f"{missing[0]}.png"
                raise CosalbenchError(
                    first,
                    f"prediction missing ({len(missing)} of {len(gt_items[name])} missing)",
                    "drop --strict",
                )
            fields = plan.ground_truth[name].document_fields()
            origin = recorded_provenance(folder, name)
            plan.jobs.append(Job(method, name, pred_dir, pairs, missing, fields, origin))
    return plan


# --- scoring (runs in worker processes) -------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    """Scores of a chunk of pairs: where each row goes, and the rows."""

    slots: np.ndarray  # (k, 2) int: (job index, pair index) of each row
    table: ScoreTable


@dataclass(frozen=True)
class _Failure:
    """A bad input file met in a worker (CosalbenchError does not survive pickling)."""

    path: str
    problem: str
    hint: str | None


# one worker task: a GT and every method's prediction of it, each with its (job index, pair index)
_ImageTask = tuple[str, list[tuple[int, int, str]]]


def _read(reader: Any, path: str, *args: Any) -> np.ndarray:
    try:
        return reader(path, *args)
    except CosalbenchError:
        raise
    except (ValueError, OSError, cv2.error) as exc:
        raise CosalbenchError(path, f"cannot read image ({exc})") from exc


def score_chunk(
    protocol: str, wfm: bool, chunk: Sequence[_ImageTask], measures: Sequence[str] = ()
) -> _Chunk | _Failure:
    """Decode and score ``[(gt_path, [(job, pair, pred_path), ...]), ...]`` with ``protocol``.

    Each GT is decoded and analysed once (:meth:`Protocol.prepare`) for all of its predictions; a bad
    file gives a _Failure. ``measures`` are opt-in FmeasureV2 measures (:mod:`confusion`).
    """
    keep_freed_memory()
    spec = get_protocol(protocol)
    handlers = confusion.handlers_of(measures)
    # every file of the chunk is decoded first: back to back, the decoder keeps its working set in the
    # caches (decoding between scoring costs about a tenth more)
    decoded = []
    for gt_path, preds in chunk:
        path = gt_path
        try:
            gt = _read(spec.read_gt, path)
            maps = []
            for _, _, path in preds:
                maps.append(_read(spec.read_pred, path, gt.shape[:2]))
        except CosalbenchError as exc:
            return _Failure(exc.path or path, exc.problem, exc.hint)
        decoded.append((gt, maps))
    slots, items = [], []
    for (_, preds), (gt, maps) in zip(chunk, decoded, strict=True):
        checked = preds[0][2]
        try:
            ground = spec.prepare(gt, wfm=wfm, confusion=handlers)
            for (job, index, path), pred in zip(preds, maps, strict=True):
                checked = path
                spec.check_prediction(pred, ground)
                slots.append((job, index))
        except CosalbenchError as exc:  # a check names no file: it is the prediction's
            return _Failure(exc.path or checked, exc.problem, exc.hint)
        items.append((maps, ground))
    # the whole chunk in one call: the per-level arithmetic is vectorised across its GTs too
    return _Chunk(np.array(slots, dtype=np.int64).reshape(-1, 2), spec.score_tables(items))


@contextmanager
def _pool(workers: int) -> Iterator[Any]:
    """A process pool for ``workers`` > 1, else None: score in this process, with one thread as each
    worker has."""
    if workers <= 1:
        with single_threaded():
            yield None
        return
    with process_pool(workers) as pool:
        yield pool


def _image_tasks(jobs: Sequence[Job]) -> list[_ImageTask]:
    """One task per GT mask: the predictions of every job for it, GTs in first-seen order."""
    by_gt: dict[Path, list[tuple[int, int, str]]] = {}
    for j, job in enumerate(jobs):
        for k, pair in enumerate(job.pairs):
            by_gt.setdefault(pair.gt, []).append((j, k, str(pair.pred)))
    return [(str(gt), preds) for gt, preds in by_gt.items()]


def _chunks(tasks: Sequence[_ImageTask], workers: int) -> list[list[_ImageTask]]:
    """Chunks of about MAX_CHUNK pairs (at least one GT), at least four per worker when there are enough."""
    per_image = max(1, round(sum(len(preds) for _, preds in tasks) / max(1, len(tasks))))
    size = max(1, min(-(-MAX_CHUNK // per_image), -(-len(tasks) // (4 * max(1, workers)))))
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


def score_jobs(
    jobs: Sequence[Job],
    protocol: str,
    wfm: bool,
    pool: Any,
    workers: int,
    progress: bool,
    measures: Sequence[str] = (),
) -> list[ScoreTable]:
    """The scores of every job (rows in pair order), one GT pass for all jobs sharing a GT."""
    tables: list[ScoreTable | None] = [None] * len(jobs)
    filled = [np.zeros(len(job.pairs), bool) for job in jobs]
    task = functools.partial(score_chunk, protocol, wfm, measures=tuple(measures))
    for dataset in dict.fromkeys(job.dataset for job in jobs):
        members = [j for j, job in enumerate(jobs) if job.dataset == dataset]
        chunks = _chunks(_image_tasks([jobs[j] for j in members]), workers)
        outputs = pool.imap(task, chunks) if pool is not None else map(task, chunks)
        total = sum(len(jobs[j].pairs) for j in members)
        desc = f"{dataset} ({len(members)} method{'s' if len(members) > 1 else ''})"
        with tqdm(total=total, desc=desc, unit="img", disable=not progress, file=sys.stderr) as bar:
            for chunk in outputs:
                if isinstance(chunk, _Failure):
                    raise CosalbenchError(chunk.path, chunk.problem, chunk.hint)
                for member in np.unique(chunk.slots[:, 0]).tolist():
                    mine = np.flatnonzero(chunk.slots[:, 0] == member)
                    job, rows = members[member], chunk.slots[mine, 1]
                    if tables[job] is None:
                        tables[job] = ScoreTable.empty(len(jobs[job].pairs), chunk.table)
                    tables[job].assign(rows, chunk.table.take(mine))
                    filled[job][rows] = True
                bar.update(len(chunk.slots))
    assert all(done.all() for done in filled), "every pair of every job is scored"
    return tables  # type: ignore[return-value]


def _confusion_summary(
    groups: Sequence[str], scores: ScoreTable, measures: Sequence[str], n_thresholds: int
) -> dict:
    """The opt-in FmeasureV2 measures of one job (all None where the protocol does not define them)."""
    if scores.confusion is None:
        undefined = dict.fromkeys(measures)
        return {
            "names": list(measures),
            "image_mean": undefined,
            "group_mean": undefined,
            "groups": {group: undefined for group in groups},
            "images": [undefined] * len(scores),
        }
    rows = scores.confusion
    names = np.asarray(groups)
    return {
        "names": list(measures),
        "image_mean": confusion.summarise(rows, measures, n_thresholds),
        "group_mean": confusion.summarise(rows, measures, n_thresholds, groups),
        "groups": {g: confusion.summarise(rows[names == g], measures, n_thresholds) for g in set(groups)},
        "images": [confusion.summarise(row[None], measures, n_thresholds) for row in rows],
    }


def _reduce(job: Job, protocol: str, scores: ScoreTable, measures: Sequence[str] = ()) -> results.Result:
    spec = get_protocol(protocol)
    groups = [pair.group for pair in job.pairs]
    aggregated = aggregate_groups(scores, groups, spec)
    keys = [(pair.group, pair.stem) for pair in job.pairs]
    extra = _confusion_summary(groups, scores, measures, len(spec.thresholds)) if measures else None
    result = results.build_result(job.method, job.dataset, spec, keys, scores, aggregated, job.missing, extra)
    result.document.update(job.gt_fields)
    return result


def _reusable(out: Path, job: Job, fingerprint: str) -> dict | None:
    """The stored document of ``job`` when its recorded fingerprint matches and its files exist."""
    json_path, csv_path = results.result_paths(out, job.method, job.dataset)
    if not csv_path.is_file() or stored_fingerprint(json_path) != fingerprint:
        return None
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_outputs(out: str | Path, plan: Plan) -> None:
    """Refuse, before any scoring, an ``--out`` (or a result path in it) that cannot take the results."""
    check_output_folder(Path(out))
    hint = "move it away or choose another --out"
    for job in plan.jobs:
        json_path, csv_path = results.result_paths(Path(out), job.method, job.dataset)
        if os.path.lexists(json_path.parent) and not json_path.parent.is_dir():
            raise CosalbenchError(json_path.parent, "is a file where the method's result folder goes", hint)
        for path in (json_path, csv_path):
            if path.is_dir():
                raise CosalbenchError(path, "is a folder where a result file goes", hint)


def write_results(
    out: str | Path,
    finished: Sequence[results.Result],
    fingerprints: Sequence[tuple[str, Mapping[str, Any], int]],
) -> None:
    """Write the documents, CSVs and fingerprints of one run into ``out`` together: all, or none.

    They are staged beside ``out`` and moved in once every file is written, so a full disk or any
    other failure leaves the previous results untouched; an OS error names the file it hit.
    ``fingerprints`` holds (fingerprint, options, number of pairs) for each result.
    """
    out = Path(out)
    current = out
    try:
        with staged_outputs(out) as stage:

            def place(final: Path) -> Path:
                nonlocal current
                current = final
                return stage.path(final)

            for result, (fingerprint, options, n_pairs) in zip(finished, fingerprints, strict=True):
                json_path, _ = results.write_result(out, result, place)
                write_fingerprint(json_path, fingerprint, options, n_pairs, place)
    except OSError as exc:
        raise from_os_error(exc, path=current) from exc


def run_plan(
    plan: Plan,
    protocol: str = "pysodmetrics",
    out: str | Path | None = None,
    workers: int = 1,
    wfm: bool = False,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
    measures: Sequence[str] = (),
    overwrite: bool = False,
    reused: list[str] | None = None,
) -> list[dict]:
    """Score every job of ``plan``; write all results under ``out`` once every one is complete.

    ``metadata`` (e.g. ``{"backbone": ...}`` from a model's predictor) is added to every document.
    ``measures`` names opt-in FmeasureV2 measures (or handlers, see :mod:`cosalbench.metrics.confusion`).
    With ``out``, a job whose inputs and options match the fingerprint recorded beside its result is
    not rescored (its stored document is returned and ``"method/dataset"`` appended to ``reused``)
    unless ``overwrite``.
    """
    get_protocol(protocol)  # fail on an unknown protocol before any decoding
    measures = confusion.parse_measures(measures)
    options = {"protocol": protocol, "wfm": wfm, "measures": list(measures), "metadata": dict(metadata or {})}
    cache: dict[Path, str] = {}
    fingerprints = [job_fingerprint(job, options, cache) for job in plan.jobs] if out is not None else []
    documents: list[dict | None] = [None] * len(plan.jobs)
    if out is not None and not overwrite:
        for index, job in enumerate(plan.jobs):
            documents[index] = _reusable(Path(out), job, fingerprints[index])
            if documents[index] is not None and reused is not None:
                reused.append(f"{job.method}/{job.dataset}")
    todo = [index for index, document in enumerate(documents) if document is None]
    jobs = [plan.jobs[index] for index in todo]
    scores: list[ScoreTable] = []
    if jobs:
        with _pool(workers) as pool:
            scores = score_jobs(jobs, protocol, wfm, pool, workers, progress, measures)
    finished = [
        _reduce(job, protocol, job_scores, measures) for job, job_scores in zip(jobs, scores, strict=True)
    ]
    for job, result in zip(jobs, finished, strict=True):
        result.document.update(metadata or {})
        if job.provenance is not None:
            result.document["provenance"] = job.provenance
    if out is not None:
        records = [(fingerprints[index], options, len(plan.jobs[index].pairs)) for index in todo]
        write_results(out, finished, records)
    for index, result in zip(todo, finished, strict=True):
        documents[index] = result.document
    return documents  # type: ignore[return-value]


def evaluate_predictions(
    pred_root: str | Path,
    datasets: Sequence[str],
    data_root: str | Path | None = None,
    protocol: str = "pysodmetrics",
    out: str | Path | None = None,
    workers: int = 1,
    wfm: bool = False,
    strict: bool = False,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
    allow_incomplete_gt: bool = False,
    pred_ext: str | None = None,
    measures: Sequence[str] = (),
    overwrite: bool = False,
) -> list[dict]:
    """Evaluate a method folder or a folder of methods on ``datasets``; one result document per pair.

    Missing predictions are listed in each document (``missing_predictions``) and the evaluation
    continues over what exists, unless ``strict``. An incomplete ground truth is an error unless
    ``allow_incomplete_gt`` (then documents say ``"gt_complete": false``). When ``out`` is given the
    documents and their per-image CSVs are written as ``<out>/<method>/<Dataset>.json|.images.csv``
    after all are done, all together.
    """
    plan = plan_evaluation(pred_root, datasets, data_root, strict, allow_incomplete_gt, pred_ext)
    if out is not None:
        check_outputs(out, plan)
    return run_plan(plan, protocol, out, workers, wfm, progress, metadata, measures, overwrite)
