"""Dask: make_dataset, generate and the evaluation metrics on a 2-worker LocalCluster give
the same files and values as one process (bit for bit: same machine, one thread per task
on both sides, the same batches); a worker lost mid-shard costs only that shard; a rerun
completes what a failed run left. Skipped with the reason printed without Dask (the test
extra installs it)."""
import filecmp
import json
import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="Dask is not installed: pip install 'ubdiff[distributed]' "
                                                        "(the test extra brings it)")

import ubdiff  # noqa: E402
from ubdiff import UBDiff, metrics  # noqa: E402
from ubdiff.data import make_dataset  # noqa: E402
from ubdiff.distributed import ShardError, dask_client  # noqa: E402

import dask_helpers  # noqa: E402

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
GEN = dict(seed=3, sampler="ddim", steps=3, file_size=3, progress=False)
DS = dict(maps=12, paired=9, file_size=5, nt=100, chunk=2, preview=False, progress=False)


@pytest.fixture(scope="module")
def client():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)      # the single-process side runs one thread, as each task does
    with dask_client(workers=2) as c:
        yield c
    ubdiff.set_num_threads(old)


@pytest.fixture(scope="module")
def model():
    m = UBDiff({"autoencoder": AE, "diffusion": DIFF}, seed=0)
    m.set_constants("flatvel-a")
    return m


def _same_folders(a, b, skip_json_keys=()):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    for n in names:
        if n.endswith(".json") and skip_json_keys:
            ja, jb = (json.load(open(os.path.join(d, n))) for d in (a, b))
            for k in skip_json_keys:
                ja.pop(k, None), jb.pop(k, None)
            assert ja == jb, n
        else:
            assert filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False), n


def _log(path):
    return open(path).read().split("\n")[:-1] if os.path.exists(path) else []


def test_make_dataset_two_workers_same_files(client, tmp_path):
    make_dataset("curvefault-a", out_dir=str(tmp_path / "one"), **DS)
    make_dataset("curvefault-a", out_dir=str(tmp_path / "two"), client=client, threads=1, **DS)
    _same_folders(tmp_path / "one", tmp_path / "two")   # every .npy and ubdiff_dataset.json, byte for byte
    assert sorted(os.listdir(tmp_path / "two")) == ["data1.npy", "data2.npy", "model1.npy", "model2.npy",
                                                    "model3.npy", "ubdiff_dataset.json"]   # no shard left


def test_make_dataset_worker_killed_mid_shard_costs_only_that_shard(client, tmp_path):
    log, marker = str(tmp_path / "calls.log"), str(tmp_path / "killed")
    sim = dict(log=log, marker=marker, fail="kill")
    make_dataset("flatvel-a", out_dir=str(tmp_path / "two"), client=client, threads=1,
                 simulate=dask_helpers.logging_simulate, simulate_kwargs=sim, **DS)
    calls = _log(log)
    killed = [c for c in calls if c.startswith("kill ")]
    ok = [c for c in calls if c.startswith("ok ")]
    # 9 paired maps in chunks of 2 within files of 5: [0,2) [2,4) [4,5) | [5,7) [7,9) -> 5 shards, each
    # simulated once; the killed one again after the scheduler moved it to a live worker
    assert len(killed) == 1 and len(ok) == 5 and len(set(ok)) == 5, calls
    assert killed[0][5:] == [c[3:] for c in ok if c[3:] == killed[0][5:]][0]
    make_dataset("flatvel-a", out_dir=str(tmp_path / "one"), simulate=dask_helpers.logging_simulate,
                 simulate_kwargs=dict(log=str(tmp_path / "ref.log")), **DS)
    _same_folders(tmp_path / "one", tmp_path / "two", skip_json_keys=("simulator",))


def test_make_dataset_rerun_completes_a_failed_shard(client, tmp_path):
    log, marker = str(tmp_path / "calls.log"), str(tmp_path / "failed")
    sim = dict(log=log, marker=marker, fail="raise")
    out = str(tmp_path / "two")
    with pytest.raises(ShardError, match="forward-model: 1 of 5 shards failed.*rerun the same command"):
        make_dataset("flatvel-a", out_dir=out, client=client, threads=1, simulate=dask_helpers.logging_simulate,
                     simulate_kwargs=sim, **DS)
    first = _log(log)
    assert len([c for c in first if c.startswith("ok ")]) == 4
    with pytest.raises(ubdiff.data.DataError, match="incomplete"):
        ubdiff.data.OpenFWIDataset.from_folder(out)
    make_dataset("flatvel-a", out_dir=out, client=client, threads=1, simulate=dask_helpers.logging_simulate,
                 simulate_kwargs=sim, **DS)
    again = _log(log)[len(first):]
    assert len(again) == 1 and again[0][3:] == first[[c.startswith("raise") for c in first].index(True)][6:]
    make_dataset("flatvel-a", out_dir=str(tmp_path / "one"), simulate=dask_helpers.logging_simulate,
                 simulate_kwargs=dict(log=str(tmp_path / "ref.log")), **DS)
    _same_folders(tmp_path / "one", tmp_path / "two", skip_json_keys=("simulator",))


def test_generate_two_workers_same_files(client, model, tmp_path):
    model.generate(8, str(tmp_path / "one"), **GEN)
    meta = model.generate(8, str(tmp_path / "two"), client=client, threads=1, **GEN)
    _same_folders(tmp_path / "one", tmp_path / "two", skip_json_keys=("seconds",))
    assert meta["complete"] and sorted(os.listdir(tmp_path)) == ["one", "two"]   # no staging folder left


def test_generate_worker_killed_mid_shard(client, model, tmp_path):
    plugin = dask_helpers.KillOnShard("ubdiff-generate-file2-", marker=str(tmp_path / "killed"))
    client.register_plugin(plugin, name="kill-file2")
    try:
        model.generate(8, str(tmp_path / "two"), client=client, threads=1, **GEN)
    finally:
        client.unregister_worker_plugin("kill-file2")
    assert os.path.exists(tmp_path / "killed")      # the worker did die on shard 2, which then ran elsewhere
    model.generate(8, str(tmp_path / "one"), **GEN)
    _same_folders(tmp_path / "one", tmp_path / "two", skip_json_keys=("seconds",))


def test_generate_rerun_completes_what_is_missing(model, tmp_path):
    import dask
    out = str(tmp_path / "two")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), dask_client(workers=2) as c:
        c.register_plugin(dask_helpers.KillOnShard("ubdiff-generate-file2-"), name="kill-file2")
        with pytest.raises(ShardError, match="generate: 1 of 3 shards failed.*rerun the same command"):
            model.generate(8, out, client=c, threads=1, **GEN)
    assert not os.path.exists(out)
    stage = [n for n in os.listdir(tmp_path) if n.startswith(".two.part-")]
    assert len(stage) == 1
    kept = {n: os.stat(os.path.join(tmp_path, stage[0], n)).st_ino
            for n in ("model1.npy", "data1.npy", "model3.npy", "data3.npy")}
    assert not os.path.exists(os.path.join(tmp_path, stage[0], "model2.npy"))
    model.generate(8, out, **GEN)      # the rerun (here in one process) writes file pair 2 only
    assert {n: os.stat(os.path.join(out, n)).st_ino for n in kept} == kept
    model.generate(8, str(tmp_path / "one"), **GEN)
    _same_folders(tmp_path / "one", out, skip_json_keys=("seconds",))
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]


def test_generate_cli_with_workers(model, tmp_path):
    from ubdiff.__main__ import main
    run = str(tmp_path / "run")
    model.save(run)
    args = ["generate", "--run", run, "--n", "5", "--seed", "2", "--sampler", "ddim", "--steps", "2",
            "--file-size", "3", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "one"), "--threads", "1"]) == 0
    assert main(args + ["--out", str(tmp_path / "two"), "--workers", "2", "--worker-threads", "1"]) == 0
    _same_folders(tmp_path / "one", tmp_path / "two", skip_json_keys=("seconds",))


def test_evaluate_metrics_two_workers_same_values(client):
    rng = np.random.default_rng(5)
    vel = ubdiff.data.generate_velocity("flatvel-a", 13, seed=1)
    seis = ubdiff.physics.forward_model(vel, nt=100) * np.float32(1.05) + rng.normal(0, 0.01, (13, 5, 100, 70)).astype(
        np.float32)
    for features in (dask_helpers.plain_features, None):   # a user callable, the reference network
        kw = dict(features=features, modality="velocity", batch_size=4)
        np.testing.assert_array_equal(metrics.extract_features(vel, client=client, threads=1, **kw),
                                      metrics.extract_features(vel, **kw))
    kw = dict(batch_size=3, worst_k=3, sim_kwargs={"nt": 100})
    one, two = metrics.physics_consistency(vel, seis, **kw), metrics.physics_consistency(vel, seis, client=client,
                                                                                          threads=1, **kw)
    assert set(one) == set(two) and one["summary"] == two["summary"]
    for k in ("rel_l1", "rel_l2", "corr", "corr_mean", "worst", "worst_simulated"):
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)
    # InversionNet usefulness: training stays here, the predictions on the test set run in shards
    s = ubdiff.physics.forward_model(vel, nt=1000)[:, :, ::4]
    kw = dict(config="small", epochs=1, batch_size=4, seed=0, data_range=(float(s.min()), float(s.max())),
              eval_batch_size=3, progress=False)
    a = metrics.inversion_usefulness((s, vel), (s, vel), **kw)
    b = metrics.inversion_usefulness((s, vel), (s, vel), client=client, threads=1, **kw)
    assert a["summary"] == b["summary"]
    for k in ("ssim_per_sample", "mae_per_sample", "mse_per_sample"):
        np.testing.assert_array_equal(a["generated"][k], b["generated"][k])
    np.testing.assert_array_equal(a["examples"]["generated"], b["examples"]["generated"])
