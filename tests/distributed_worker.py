"""Scripts the MPI tests launch with ``mpiexec -n 2 python tests/distributed_worker.py SCENARIO OUTDIR``.

Not a test module (pytest does not collect it).  Each scenario checks what it can on
every rank (a failed check raises, and the abort hook stops both ranks) and writes
``OUTDIR/rank{r}.json`` for tests/test_distributed_mpi.py to inspect.

* ``equivalence``: 2 ranks with batch b == 1 process with batch 2b over 20 steps (SGD with
  momentum and Adam; MLP and CNN; a CNN with SyncBatchNorm; numpy, torch and the host-staged
  ``array_api_strict:device1``), parameters checksummed and all-gathered after every step.
* ``fit``: ``nn.fit`` on a DataParallel model with checkpoints, a CSV log and validation; the
  same run resumed from a one-process checkpoint (``OUTDIR/one-1.npz``, when present); then a
  run where only rank 1 sees a NaN loss.
* ``raise``: rank 1 raises in the middle of training; both ranks must stop.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

import anyxp_nn as nn
from anyxp_nn.distributed import DataParallel, SyncBatchNorm, init

B = 4          # per-rank batch
STEPS = 20


def build(kind: str, backend: str, sync_bn: bool = False) -> nn.Layer:
    nn.manual_seed(0)
    b = nn.get_backend(backend)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(12, 16, backend=b), nn.Tanh(backend=b), nn.Linear(16, 3, backend=b))
    # a bias before BatchNorm has a zero gradient up to rounding, which Adam would amplify
    layers = [nn.Conv2D(1, 4, 3, padding=1, bias=kind != "cnn_bn", backend=b)]
    if kind == "cnn_bn":
        layers.append(nn.BatchNorm2D(4, backend=b))
    layers += [nn.ReLU(backend=b), nn.MaxPool2D(2, backend=b), nn.Conv2D(4, 6, 3, backend=b),
               nn.ReLU(backend=b), nn.Flatten(backend=b), nn.Linear(6 * 2 * 2, 3, backend=b)]
    model = nn.Sequential(*layers)
    return SyncBatchNorm.convert_sync_batchnorm(model) if sync_bn else model


def data(kind: str, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n, 12) if kind == "mlp" else (n, 1, 8, 8)
    return rng.normal(size=shape).astype(np.float32), rng.integers(0, 3, size=n)


def optimizer(name: str, model: nn.Layer):
    if name == "sgd":
        return nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return nn.optim.Adam(model.parameters(), lr=1e-2)


def checksum(model: nn.Layer) -> int:
    crc = 0
    for v in model.state_dict().values():
        crc = zlib.crc32(np.ascontiguousarray(v).tobytes(), crc)
    return crc


def train_steps(model, opt, loader, steps, on_step=None, syncs=None) -> None:
    """``steps`` optimizer steps; ``syncs``: a dict summing the transfers made inside backprop."""
    k = 0
    while k < steps:
        for xb, yb in loader:
            opt.zero_grad()
            logits, backprop = model.forward(xb, train=True)
            _, dlogits = nn.losses.softmax_cross_entropy(logits, yb)
            with nn.sync_guard(backends=("array_api_strict",)) as counted:
                backprop(dlogits, need_dx=False)
            if syncs is not None:
                for kind, n in counted.counts.items():
                    syncs[kind] = syncs.get(kind, 0) + n
            opt.step()
            k += 1
            if on_step is not None:
                on_step(k)
            if k == steps:
                return


def equivalence(comm, out: dict) -> None:
    cases = [("mlp", "sgd", "numpy"), ("mlp", "adam", "numpy"), ("cnn", "sgd", "numpy"),
             ("cnn", "adam", "numpy"), ("cnn_bn", "sgd", "numpy"), ("cnn_bn", "adam", "numpy"),
             ("mlp", "adam", "torch"), ("cnn", "sgd", "array_api_strict:device1")]
    cases = [c for c in cases if c[2] != "torch" or "torch" in nn.available_backends()]  # torch is optional
    out["cases"] = []
    for kind, opt_name, backend in cases:
        x, y = data(kind, 2 * B * 5)   # 5 global steps per epoch, 4 epochs
        ref = build(kind, backend)
        ref_opt = optimizer(opt_name, ref)
        train_steps(ref, ref_opt, nn.data.DataLoader(x, y, batch_size=2 * B, backend=backend, rng=7), STEPS)
        model = DataParallel(build(kind, backend, sync_bn=kind == "cnn_bn"), comm, bucket_bytes=256)
        opt = optimizer(opt_name, model)
        loader = nn.data.DataLoader(x, y, batch_size=B, backend=backend, rng=7, shard=(comm.rank, comm.size))
        sums = []

        def check(k: int) -> None:
            everyone = comm.allgather(np.array([checksum(model)], dtype=np.int64))
            if len(set(everyone[:, 0].tolist())) != 1:
                raise AssertionError(f"{kind}/{opt_name}/{backend}: parameters differ between ranks after "
                                     f"step {k}: checksums {everyone[:, 0].tolist()}")
            sums.append(int(everyone[0, 0]))

        syncs: dict = {}
        train_steps(model, opt, loader, STEPS, check, syncs)
        worst = 0.0
        mine, theirs = model.state_dict(), ref.state_dict()
        for key, v in theirs.items():
            diff = float(np.max(np.abs(mine[key].astype(np.float64) - v.astype(np.float64))))
            scale = float(np.max(np.abs(v))) + 1e-3
            worst = max(worst, diff / scale)
            if not np.allclose(mine[key], v, rtol=1e-5, atol=2e-6):
                raise AssertionError(f"{kind}/{opt_name}/{backend}: {key} after {STEPS} steps differs from the "
                                     f"one-process run with batch {2 * B}: max |diff| {diff:.3g}")
        out["cases"].append({"kind": kind, "opt": opt_name, "backend": backend, "checksums": len(sums),
                             "worst_rel_diff": worst, "buckets": len(model.buckets()),
                             "syncs_in_backprop": syncs})


def fit_run(comm, out: dict, folder: Path) -> None:
    x, y = data("mlp", 2 * B * 4)
    xv, yv = data("mlp", 16, seed=2)
    model = DataParallel(build("mlp", "numpy"), comm)
    opt = optimizer("adam", model)
    loader = nn.data.DataLoader(x, y, batch_size=B, rng=11, shard=(comm.rank, comm.size))
    callbacks = [nn.callbacks.ModelCheckpoint(str(folder / "ckpt-{epoch}.npz")),
                 nn.callbacks.CSVLogger(folder / "log.csv"), nn.callbacks.NonFiniteGuard(),
                 nn.callbacks.EarlyStopping(monitor="val_loss", patience=10)]
    history = nn.fit(model, opt, nn.losses.softmax_cross_entropy, loader, val_data=(xv, yv), epochs=3,
                     callbacks=callbacks, progress=True)
    losses = np.array(history.steps["loss"] + history.epochs["val_loss"], dtype=np.float64)
    everyone = comm.allgather(losses)
    if not np.array_equal(everyone[0], everyone[1]):
        raise AssertionError(f"fit: ranks recorded different step losses: {everyone.tolist()}")
    out["fit"] = {"checksum": checksum(model), "steps": len(history.steps["loss"]),
                  "stop_reason": history.stop_reason}
    if comm.rank == 0:
        np.savez(folder / "final.npz", **model.state_dict())
    final = model.state_dict()

    # a checkpoint written by one process with batch 2b (by the test, before launching) resumes on 2 ranks
    one = folder / "one-1.npz"
    if one.exists():
        model = DataParallel(build("mlp", "numpy"), comm)
        opt = optimizer("adam", model)
        loader = nn.data.DataLoader(x, y, batch_size=B, rng=11, shard=(comm.rank, comm.size))
        nn.fit(model, opt, nn.losses.softmax_cross_entropy, loader, val_data=(xv, yv), epochs=3,
               progress=False, resume=str(one))
        worst = max(float(np.max(np.abs(v - final[k]))) for k, v in model.state_dict().items())
        if worst > 1e-5:
            raise AssertionError(f"fit: resuming a one-process checkpoint on 2 ranks left the trajectory "
                                 f"(max |diff| {worst:.3g} from the 2-rank run)")
        out["resumed_from_one_process"] = worst

    # only rank 1 sees a NaN loss at its 3rd step: both ranks must stop together, none may hang
    model = DataParallel(build("mlp", "numpy"), comm)
    opt = optimizer("sgd", model)
    calls = {"n": 0}

    def loss_fn(logits, yb):
        loss, d = nn.losses.softmax_cross_entropy(logits, yb)
        calls["n"] += 1
        if comm.rank == 1 and calls["n"] == 3:
            loss = loss * float("nan")
        return loss, d

    history = nn.fit(model, opt, loss_fn, loader, epochs=3, callbacks=[nn.callbacks.NonFiniteGuard()],
                     progress=False, log_every=1)
    out["nan"] = {"stop_reason": history.stop_reason, "steps": len(history.steps["loss"])}


def raising(comm, out: dict) -> None:
    x, y = data("mlp", 64)
    model = DataParallel(build("mlp", "numpy"), comm)
    opt = optimizer("sgd", model)
    loader = nn.data.DataLoader(x, y, batch_size=B, rng=3, shard=(comm.rank, comm.size))

    def maybe_raise(k: int) -> None:
        if comm.rank == 1 and k == 3:
            raise RuntimeError("rank 1 fails on purpose at step 3")

    train_steps(model, opt, loader, 50, maybe_raise)


def main() -> None:
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    comm = init()
    out: dict = {"rank": comm.rank, "size": comm.size}
    {"equivalence": lambda: equivalence(comm, out), "fit": lambda: fit_run(comm, out, folder),
     "raise": lambda: raising(comm, out)}[scenario]()
    (folder / f"rank{comm.rank}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
