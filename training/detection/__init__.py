"""Ampulla detection: the paper's soft-mask U-Net, a box-regression baseline, evaluation, export."""
