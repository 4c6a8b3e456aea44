"""Build of cosalbench's one compiled module; everything else is declared in pyproject.toml."""

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "cosalbench.metrics._kernels",
            ["cosalbench/metrics/_kernels.c"],
            extra_compile_args=[] if sys.platform == "win32" else ["-O3"],
        )
    ]
)
