"""Data-parallel training on MPI: step time, scaling, all-reduce share, buckets and overlap, ring cost model.

Launches itself as ``mpiexec -n P`` workers (P = 1, 2) and prints:

1. step time per rank and weak-scaling efficiency T(1) / T(2) (fixed batch per rank) for an MLP
   784-256-128-10 (batch 64 per rank) and a small CNN on 1x28x28 inputs (batch 32 per rank),
   with the share of the step spent waiting for gradient all-reduces after backprop;
2. the effect of the bucket size and of overlapping the all-reduces with backprop (2 ranks);
3. MPI_Allreduce latency and bandwidth between the 2 ranks, and on paper, a ring all-reduce
   of the same models (and of a ResNet-50-sized 102 MB gradient) on P = 8 .. 1024 ranks at the
   measured bandwidth: t(P) = 2 (P - 1) alpha + 2 (P - 1) / P * bytes / beta.

Every worker runs one BLAS thread (``OMP_NUM_THREADS=1``), so P ranks use P cores.

    flock /tmp/anyxp_bench.lock python benchmarks/bench_distributed.py [--steps 40] [--ranks 1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


# -- worker (inside mpiexec) ------------------------------------------------------------------------
def build(kind: str):
    import anyxp_nn as nn
    nn.manual_seed(0)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)), 64
    return nn.Sequential(nn.Conv2D(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                         nn.Conv2D(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10)), 32


def time_config(comm, kind: str, steps: int, bucket_bytes: int, overlap: bool) -> dict:
    import anyxp_nn as nn
    from anyxp_nn.distributed import DataParallel
    model, batch = build(kind)
    dp = DataParallel(model, comm, bucket_bytes=bucket_bytes, overlap=overlap)
    opt = nn.optim.SGD(dp.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(comm.rank)
    shape = (batch, 784) if kind == "mlp" else (batch, 1, 28, 28)
    x, y = rng.normal(size=shape).astype(np.float32), rng.integers(0, 10, batch)
    step_s, wait_s = [], []
    for i in range(steps + 5):
        comm.barrier()
        t = time.perf_counter()
        opt.zero_grad()
        logits, backprop = dp.forward(x)
        _, d = nn.losses.softmax_cross_entropy(logits, y)
        backprop(d, need_dx=False)
        opt.step()
        dt = time.perf_counter() - t
        if i >= 5:  # warm-up steps are not timed
            wait = dp.last_step.wait_seconds if dp.last_step is not None else 0.0  # one rank: no averaging
            slowest = comm.allgather(np.array([dt, wait]))
            step_s.append(float(slowest[:, 0].max()))
            wait_s.append(float(slowest[:, 1].max()))
    nbytes = sum(int(np.prod(p.shape)) * 4 for p in dp.parameters())
    return {"kind": kind, "ranks": comm.size, "bucket_bytes": bucket_bytes, "overlap": overlap,
            "buckets": len(dp.buckets()), "model_bytes": nbytes, "step_ms": 1e3 * float(np.median(step_s)),
            "wait_ms": 1e3 * float(np.median(wait_s))}


def time_allreduce(comm, nbytes: int, reps: int) -> float:
    buf = np.ones(max(1, nbytes // 4), dtype=np.float32)
    times = []
    for _ in range(reps):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce(buf)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def worker(args: argparse.Namespace) -> None:
    from anyxp_nn.distributed import init
    comm = init()
    rows = [time_config(comm, kind, args.steps, 25 * 2**20, True) for kind in ("mlp", "cnn")]
    if comm.size > 1:
        for kind in ("mlp", "cnn"):
            for bucket in (16 * 2**10, 256 * 2**10, 25 * 2**20):
                for overlap in (True, False):
                    rows.append(time_config(comm, kind, args.steps, bucket, overlap))
        latency = time_allreduce(comm, 8, 200)
        big = 8 * 2**20
        t_big = time_allreduce(comm, big, 20)
        alone = {r["kind"]: time_allreduce(comm, r["model_bytes"], 50) for r in rows[:2]}
        rows.append({"allreduce": True, "latency_s": latency, "big_bytes": big, "big_s": t_big, "alone_s": alone})
    if comm.rank == 0:
        Path(args.json).write_text(json.dumps(rows))


# -- driver -----------------------------------------------------------------------------------------
def ring_seconds(p: int, nbytes: float, alpha: float, beta: float) -> float:
    """Ring all-reduce (reduce-scatter + all-gather): 2(P-1) messages of nbytes/P each."""
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per configuration")
    ap.add_argument("--ranks", default="1,2", help="comma-separated process counts to launch")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if mpiexec is None:
        sys.exit("bench_distributed: needs mpiexec and mpi4py (pip install 'anyxp_nn[mpi]')")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])}
    results: dict[int, list] = {}
    for p in [int(v) for v in args.ranks.split(",")]:
        out = Path(f"/tmp/bench_distributed_{os.getpid()}_{p}.json")
        subprocess.run([mpiexec, "-n", str(p), sys.executable, str(HERE), "--worker", "--json", str(out),
                        "--steps", str(args.steps)], env=env, check=True, timeout=1800)
        results[p] = json.loads(out.read_text())
        out.unlink()
    report(results)


def report(results: dict[int, list]) -> None:
    base = {r["kind"]: r for r in results.get(1, []) if "kind" in r}
    print("\n1. step time, fixed batch per rank (MLP 64, CNN 32), 25 MiB buckets, overlap on")
    print("| model | ranks | model MB | ms/step | wait for all-reduces after backprop | all-reduce of the model "
          "alone | efficiency T(1)/T(P) |")
    print("|---|---|---|---|---|---|---|")
    for p, rows in sorted(results.items()):
        ar = next((r for r in rows if r.get("allreduce")), None)
        for r in rows[:2]:
            eff = base[r["kind"]]["step_ms"] / r["step_ms"] if r["kind"] in base else float("nan")
            alone = f"{1e3 * ar['alone_s'][r['kind']]:.2f} ms" if ar else "-"
            print(f"| {r['kind']} | {p} | {r['model_bytes'] / 1e6:.2f} | {r['step_ms']:.2f} | "
                  f"{r['wait_ms']:.2f} ms ({100 * r['wait_ms'] / r['step_ms']:.0f}%) | {alone} | {eff:.2f} |")
    two = results.get(2)
    if not two:
        return
    print("\n2. bucket size and overlap, 2 ranks")
    print("| model | bucket | buckets | overlap | ms/step | wait after backprop ms |")
    print("|---|---|---|---|---|---|")
    for r in two[2:]:
        if "kind" in r:
            overlap = "on" if r["overlap"] else "off"
            print(f"| {r['kind']} | {r['bucket_bytes'] // 1024} KiB | {r['buckets']} | {overlap} "
                  f"| {r['step_ms']:.2f} | {r['wait_ms']:.2f} |")
    ar = next(r for r in two if r.get("allreduce"))
    alpha = ar["latency_s"] / 2                                  # P = 2: 2(P-1) = 2 latency terms
    beta = ar["big_bytes"] / max(ar["big_s"] - 2 * alpha, 1e-9)  # P = 2: 2(P-1)/P = 1 times the bytes
    print(f"\n3. MPI_Allreduce between 2 ranks: 8 B in {1e6 * ar['latency_s']:.1f} us (alpha = {1e6 * alpha:.1f} us"
          f" per message), {ar['big_bytes'] >> 20} MiB in {1e3 * ar['big_s']:.2f} ms (beta = {beta / 1e9:.2f} GB/s)")
    sizes = [(f"{k} ({base[k]['model_bytes'] / 1e6:.2f} MB)", base[k]["model_bytes"]) for k in base]
    sizes.append(("ResNet-50-sized (102 MB)", 25.6e6 * 4))
    ps = [8, 16, 64, 256, 1024]
    print("ring all-reduce per step on paper, t(P) = 2(P-1) alpha + 2(P-1)/P bytes / beta, at the measured "
          "alpha and beta:")
    print("| gradient | " + " | ".join(f"P={p}" for p in ps) + " |")
    print("|---|" + "---|" * len(ps))
    for name, nbytes in sizes:
        cells = [f"{1e3 * ring_seconds(p, nbytes, alpha, beta):.2f} ms" for p in ps]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
