"""Prefect flows: one per file, composition only."""
