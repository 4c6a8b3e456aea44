"""Metrics: exact, histogram-based saliency measures under three named protocols."""

try:
    from cosalbench.metrics import _kernels  # noqa: F401  (the compiled loops; built by pip install)
except ImportError as error:  # a source tree used without installing it
    raise ImportError(
        "cosalbench's compiled module (cosalbench/metrics/_kernels.c) is not built: run `pip install -e .` "
        "in the repository (it needs a C compiler such as gcc)"
    ) from error
