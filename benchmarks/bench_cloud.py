"""Cloud benchmark: lazyspheres reading from (and writing to) a real S3 server at cloud latency.

Starts s3rver 3.7.1 (npm; a real S3 server whose range GETs cost O(range), unlike moto's,
which copy the whole object per GET) on loopback, and in front of it the shaping proxy of
``tests/shaping_proxy.py``, which adds a time to first byte to every request and limits
each connection's bandwidth. Every case is timed through the proxy, against a floor timed
through the same proxy in the same run, and printed as a ratio with its request counts
(the proxy runs in a process of its own, as a network would):

- ``nii_gz``: T=300 ``.nii.gz`` (Power 264, r = 5 mm) vs one streamed GET of the object;
- ``nii``: the same run as ``.nii`` vs one streamed GET of the object;
- ``batch``: ``extract_many`` of 3 T=120 ``.nii.gz`` runs from S3 into a store on S3 vs
  the same batch into a local store, with the store's requests split by phase.

Profiles (``--profiles LATENCY_MS:MB_PER_S``, 0 = unlimited): ``0:0`` (loopback) and
``30:100`` (30 ms per request, 100 MB/s per connection). Every value is checked equal to the
local extraction (the script fails loudly otherwise). Times are the best of ``--repeat``.

    python benchmarks/bench_cloud.py --data /work/bench-data [--repeat 2] [--cases nii_gz nii]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the servers live with the tests

from _proxy_process import ProxyProcess as Proxy  # noqa: E402
from s3rver_server import S3rver  # noqa: E402

BUCKET = "bench"
SEEDS, RADIUS = "power2011", 5.0
BATCH_RUNS = 3


# ---------------------------------------------------------------------------- helpers
def ensure_data(
    folder: pathlib.Path, volumes: int, batch_volumes: int, cases: list[str]
) -> dict[str, Any]:
    """The T=300 .nii.gz/.nii and T=120 .nii.gz runs the cases need (generated once)."""
    from run import ensure_data as ensure_run_data  # benchmarks/ is on sys.path

    files: dict[str, Any] = {}
    if "nii_gz" in cases or "nii" in cases:
        big = ensure_run_data(folder, volumes)
        files.update({name: big[kind] for name, kind in (("nii_gz", "gz"), ("nii", "nii"))})
    if "batch" in cases:
        files["batch"] = ensure_run_data(folder, batch_volumes)["gz"]
    return {name: path for name, path in files.items() if name in cases}


def stream_get(fs: Any, key: str) -> int:
    """One GET of a whole object, its body read in 4 MiB pieces and dropped; bytes read."""
    from fsspec.asyn import sync

    async def get() -> int:
        answer = await fs._call_s3("get_object", Bucket=BUCKET, Key=key)
        total = 0
        async with answer["Body"] as body:
            while piece := await body.read(1 << 22):
                total += len(piece)
        return total

    return sync(fs.loop, get)


def summary(requests: list[Any]) -> dict[str, float]:
    return {"requests": len(requests), "mb": sum(r.body_bytes for r in requests) / 1e6}


def timed(proxy: Proxy, repeat: int, function: Any) -> tuple[float, Any, list[Any]]:
    """Best time of ``repeat`` calls, the last result, and the requests of the last call."""
    best, result, last = float("inf"), None, []
    for _ in range(repeat):
        with proxy.watch() as seen:
            started = time.perf_counter()
            result = function()
            best = min(best, time.perf_counter() - started)
        last = seen
    return best, result, last


def check_equal(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    if got.shape != expected.shape or not np.array_equal(got, expected, equal_nan=True):
        raise AssertionError(f"{name}: values read through S3 differ from the local extraction")


# ---------------------------------------------------------------------------- cases
def single_run_case(name, key, local, options, proxy, repeat) -> dict[str, Any]:
    """One run read from S3 vs one GET of the object, through the same proxy."""
    import fsspec

    import lazyspheres as ls

    url = f"s3://{BUCKET}/{key}"
    ours_s, values, ours = timed(
        proxy, repeat, lambda: ls.extract(url, SEEDS, RADIUS, storage_options=options).values
    )
    check_equal(name, values, local)
    fs = fsspec.filesystem("s3", **options)  # the instance lazyspheres uses (warm pool)
    floor_s, _, floor = timed(proxy, repeat, lambda: stream_get(fs, key))
    return {"ours_s": ours_s, "floor_s": floor_s, "ours": ours, "floor": floor}


def batch_case(keys, local, options, proxy, repeat, tag) -> dict[str, Any]:
    """extract_many of the runs into a store on S3 vs into a local store."""
    import lazyspheres as ls

    sources = [f"s3://{BUCKET}/{key}" for key in keys]
    counter = iter(range(10**6))
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="bench-cloud-"))

    def run(store: str) -> str:
        ls.extract_many(
            sources, SEEDS, RADIUS, store=store, storage_options=options, progress=False
        )
        return store

    try:
        # Interleaved (S3, local, S3, local...): on a shared machine, load that drifts
        # during the run then weighs on both sides alike.
        ours_s = floor_s = float("inf")
        for _ in range(repeat):
            seconds, ours_store, ours = timed(
                proxy, 1, lambda: run(f"s3://{BUCKET}/results-{tag}-{next(counter)}.zarr")
            )
            ours_s = min(ours_s, seconds)
            seconds, floor_store, floor = timed(
                proxy, 1, lambda: run(str(scratch / f"results-{next(counter)}.zarr"))
            )
            floor_s = min(floor_s, seconds)
        with proxy.watch() as resumed:  # nothing left to do: what reading the state costs
            run(ours_store)
        for store in (ours_store, floor_store):  # checked outside the timing and the counts
            check_results(store, options, local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "ours_s": ours_s, "floor_s": floor_s, "ours": ours, "floor": floor, "resumed": resumed
    }  # fmt: skip


def check_results(store: str, options: dict[str, Any], local: np.ndarray) -> None:
    """Every run of a result store (opened with plain ``xr.open_zarr``) equals ``local``."""
    import xarray as xr

    ds = xr.open_zarr(store, storage_options=options if "://" in store else None)
    if not ds["complete"].values.all():
        raise AssertionError(f"{store}: not every run is complete")
    for run_id in ds["run"].values:
        n = int(ds["n_volumes"].sel(run=run_id))
        check_equal(f"batch {run_id}", ds["signals"].sel(run=run_id).values[:n], local)


# The result store's array chunked one run per object (lazyspheres/batch/store.py); the
# per-run state (n_volumes, ..., complete) is in blocks of runs, written by the client.
PER_RUN_ARRAYS = {"signals"}


def store_profile(requests: list[Any], input_keys: set[str]) -> dict[str, Any]:
    """The store's requests by phase, and by method and array.

    Creation: the store requests up to the first PUT of the root ``zarr.json`` (the
    template's last object; it is written while the inputs are read). Per run: requests on
    that run's chunks of the signals. Shared: every other store request after creation (the
    per-run state and flags, written in blocks, with the ``inputs`` attribute; the final
    attributes).
    """
    store = [r for r in requests if r.key not in input_keys]
    root = next(
        (i for i, r in enumerate(store) if r.method == "PUT" and _array(r) == "zarr.json"),
        -1,
    )
    per_run: Counter[int] = Counter()
    shared = 0
    for r in store[root + 1 :]:
        parts = r.key.split("/")[1:]
        if len(parts) > 2 and parts[0] in PER_RUN_ARRAYS and parts[1] == "c":
            per_run[int(parts[2])] += 1
        else:
            shared += 1
    arrays = Counter(f"{r.method} {_array(r)}" for r in store)
    return {
        "creation": root + 1,
        "per_run": [per_run[i] for i in sorted(per_run)],
        "shared": shared,
        "inputs": len(requests) - len(store),
        "arrays": arrays,
    }


def _array(request: Any) -> str:
    """``signals/c``, ``zarr.json``, ``(list)``... : where in the store a request went."""
    if not request.key:
        return "(list)" if "list-type" in request.query else "(bucket)"
    parts = request.key.split("/")[1:]  # drop the store's own name
    if not parts:
        return "(store root)"
    return "/".join(parts[:2]) if parts[0] != "zarr.json" and len(parts) > 1 else parts[0]


# ---------------------------------------------------------------------------- report
def line(name: str, case: dict[str, Any], floor_label: str) -> str:
    ours, floor = summary(case["ours"]), summary(case["floor"])
    return (
        f"{name}: {case['ours_s'] / case['floor_s']:.2f} "
        f"(lazyspheres {case['ours_s']:.2f} s, {ours['requests']} requests, "
        f"{ours['mb']:.1f} MB / {floor_label} {case['floor_s']:.2f} s, "
        f"{floor['requests']} requests, {floor['mb']:.1f} MB)"
    )


def run(args: argparse.Namespace) -> None:
    import lazyspheres as ls

    files = ensure_data(args.data, args.volumes, args.batch_volumes, args.cases)
    local = {
        name: ls.extract(str(path), SEEDS, RADIUS).values for name, path in files.items()
    }  # also warms up imports and caches before anything is timed
    batch_keys = [f"batch/sub-{i:02d}_task-rest_bold.nii.gz" for i in range(1, BATCH_RUNS + 1)]
    with S3rver(BUCKET, directory=args.server_dir) as server:
        fs = server.filesystem()
        # One PUT per object: s3rver 3.7.1 fails CompleteMultipartUpload of these sizes.
        single = {"chunksize": 4 << 30}
        for name in {"nii_gz", "nii"} & set(files):
            fs.put_file(str(files[name]), f"{BUCKET}/{files[name].name}", **single)
        for key in batch_keys if "batch" in files else []:
            fs.put_file(str(files["batch"]), f"{BUCKET}/{key}", **single)
        for profile in args.profiles:
            latency_ms, mb_per_s = (float(x) for x in profile.split(":"))
            tag = f"{latency_ms:g}ms" + (f"_{mb_per_s:g}MBps" if mb_per_s else "")
            with Proxy(
                server.endpoint,
                BUCKET,
                latency=latency_ms / 1000,
                bandwidth=mb_per_s * 1e6 or None,
                lifetime=3600,
            ) as proxy:
                options = server.storage_options(proxy.endpoint)
                for name in [name for name in ("nii_gz", "nii") if name in files]:
                    case = single_run_case(
                        name, files[name].name, local[name], options, proxy, args.repeat
                    )
                    print(line(f"cloud_{name}_{tag}", case, "one GET"), flush=True)
                if "batch" not in files:
                    continue
                case = batch_case(batch_keys, local["batch"], options, proxy, args.repeat, tag)
                print(line(f"cloud_batch{BATCH_RUNS}_{tag}", case, "local store"), flush=True)
                for label in ("ours", "floor"):
                    of = store_profile(case[label], set(batch_keys))
                    print(
                        f"  {label}: input requests {of['inputs']}, store requests: creation "
                        f"{of['creation']}, per run {of['per_run']}, shared {of['shared']}"
                    )
                    if of["arrays"]:
                        print(f"    by method and array: {dict(sorted(of['arrays'].items()))}")
                store_requests = [r for r in case["resumed"] if r.key not in set(batch_keys)]
                print(f"  resume of the complete S3 store: {len(store_requests)} store requests")
                if proxy.errors:
                    raise RuntimeError(f"proxy errors: {proxy.errors[:3]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--batch-volumes", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profiles", nargs="+", default=["0:0", "30:100"])
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=["nii_gz", "nii", "batch"],
        default=["nii_gz", "nii", "batch"],
    )
    parser.add_argument("--server-dir", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    run(args)


if __name__ == "__main__":
    main()
