"""Cannulation-difficulty classification (Kim et al. 2021): labels, models, CV, CAM, export."""
