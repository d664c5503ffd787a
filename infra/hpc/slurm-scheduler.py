"""Start a standing Dask cluster of SLURM jobs and print its address for ``--dask-address``.

python infra/hpc/slurm-scheduler.py --jobs 8 &
accord train --dask-address tcp://<printed address> --config run.yaml
"""

from __future__ import annotations

import argparse
import time

from dask_jobqueue import SLURMCluster  # pip install dask-jobqueue


def main() -> None:
    """Submit the worker jobs, print the scheduler address, and keep the cluster up."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--queue", default="compute")
    parser.add_argument("--memory", default="8GB")
    args = parser.parse_args()
    cluster = SLURMCluster(
        queue=args.queue,
        cores=1,
        processes=1,
        memory=args.memory,
        walltime="08:00:00",
        job_script_prologue=["export OMP_NUM_THREADS=1 ACCORD_THREADS_PER_TASK=1"],
    )
    cluster.scale(jobs=args.jobs)
    print(cluster.scheduler_address, flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
