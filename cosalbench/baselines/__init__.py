"""Training-free co-saliency baselines (numpy/opencv only)."""
