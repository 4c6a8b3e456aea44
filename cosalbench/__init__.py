"""cosalbench: co-salient object detection datasets, metrics, reference models and reports."""

__version__ = "0.1.0"
