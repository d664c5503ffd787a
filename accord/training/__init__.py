"""Training: prepare a run, order its fits, fit members on folds and refit them on the whole split."""
