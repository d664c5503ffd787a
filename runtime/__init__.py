"""How Prefect and Dask start and are wired on this process.

The local Prefect server, the Dask task runner, local workers, core pinning and the worker preload.
"""
