"""Datasets: the registry of public CoSOD sets, standardisation, COCO-SEG and synthetic groups."""
