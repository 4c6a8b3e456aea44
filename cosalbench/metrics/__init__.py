"""Metrics: exact, histogram-based saliency measures under three named protocols."""
