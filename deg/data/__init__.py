"""Datasets: registry, downloads, synthetic data, video and label readers, splits."""
