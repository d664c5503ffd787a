"""Ensembling: losses, metrics, weights on out-of-fold predictions, evaluation, and the loaded `Ensemble`."""
