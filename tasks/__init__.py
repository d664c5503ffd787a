"""Thin Prefect tasks over `accord`: names, retries, cache policy, logging, artifacts."""
