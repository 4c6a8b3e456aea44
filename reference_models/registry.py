"""Model name -> module that implements the reference-model interface.

Every model module exposes:

* ``DEFAULT_RECIPE: str`` -- file name of its recipe in ``recipes/``;
* ``build_model(cfg) -> torch.nn.Module``;
* ``plan_batches(dataset, cfg, rng) -> Iterator[(pairs, labels)]`` -- one epoch of training batches as
  pair indices into ``dataset.pairs()`` and their labels (``reference_models.loader`` gathers, augments
  and normalises them);
* ``training_loss(model, batch, cfg) -> dict[str, Tensor]`` -- key ``"loss"`` is the total, the others are logged;
* ``predict_group(model, images, cfg) -> Tensor[N, 1, H, W]`` in [0, 1] for one whole (normalised) group
  (logits instead when the module sets ``MAP_LOGITS = True``: the predictor resizes them to the original
  size, then applies the sigmoid, as MCCL's test script does).

A predict-only model (a released-weights port without the training code) leaves out ``plan_batches`` and
``training_loss``: ``train-reference`` refuses it with one line.

Optional hooks: ``prepare_config(cfg, dataset) -> cfg`` (fill recipe values that depend on the training set,
called before ``build_model``), ``group_context(model, images, cfg)`` + ``decode(model, images, context, cfg)``
(predict a group too large for one forward pass: the context is computed over the whole group, chunking its
own passes by ``cfg["predict_chunk"]``; ``decode`` then runs chunk by chunk), ``adapt_state_dict(state) ->
state`` (accept an official release's checkpoint), ``RECIPE_KEYS: dict[str, schema.Field]`` (recipe keys of
this model beyond ``schema.TRAINER_KEYS`` and its section of ``schema.MODEL_KEYS``); ``CHECKPOINT_HINT: str`` (what
to download when ``--checkpoint`` does not exist).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cosalbench.errors import CosalbenchError

MODELS: dict[str, str] = {
    "gconet": "reference_models.gconet",
    "rcgs": "reference_models.rcgs",
    "gconet_plus": "reference_models.gconet_plus",
    "gicd": "reference_models.gicd",
    "dcfm": "reference_models.dcfm",
    "mccl": "reference_models.mccl",
}


def load_model_module(name: str) -> ModuleType:
    """Import the module of model ``name``; unknown names raise CosalbenchError."""
    key = name.lower()
    if key not in MODELS:
        raise CosalbenchError(
            None, f"unknown reference model {name!r}", f"choose one of {', '.join(sorted(MODELS))}"
        )
    try:
        return importlib.import_module(MODELS[key])
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise CosalbenchError(
                None, "the reference models need torch", "install the extra: pip install 'cosalbench[models]'"
            ) from exc
        raise
