"""Scaling out on the engines the field already runs: Dask for the stages that split into
independent shards, MPI (mpi4py) for data-parallel training. Both are optional
(``pip install 'ubdiff[distributed]'``, ``pip install 'ubdiff[mpi]'``) and imported only
when used.

- :mod:`.dask_jobs`      a Dask client (LocalCluster or an existing scheduler) and
                          :func:`run_shards`: one task per shard, threads set per worker
- :mod:`.dataset_shards`, :mod:`.generate_shards`, :mod:`.eval_shards`: the shards of
                          make_dataset, UBDiff.generate and the evaluation metrics
- :mod:`.comm`           the process group: MPI's COMM_WORLD under mpirun, else one process
- :mod:`.sampler`        global batches and each rank's slice of them
- :mod:`.data_parallel`  one data-parallel optimiser step (one all-reduce of the flat
                          gradient buffer) for any model with the split-step protocol
- :mod:`.invnet_train`   InversionNet trained in a resumable run folder, rank 0 saving
- :mod:`.cli`            the ``--workers`` / ``--scheduler`` flags of the CLI

Used by ``make_dataset(client=...)``, ``UBDiff.generate(client=...)``, the
``client=`` of the evaluation metrics, and ``python -m ubdiff train-inversionnet``.
"""
from .comm import Comm, world
from .dask_jobs import ShardError, dask_client, run_shards
from .data_parallel import DataParallel
from .sampler import ShardedBatches, epoch_batches, shard

__all__ = ["Comm", "world", "ShardError", "dask_client", "run_shards", "DataParallel", "ShardedBatches",
           "epoch_batches", "shard"]
