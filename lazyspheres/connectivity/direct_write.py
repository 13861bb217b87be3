"""Write a new ``(run, seed, seed2)`` connectome into a local result store without xarray.

Why: with the tasks writing their own chunk files (see :mod:`~lazyspheres.connectivity.store`),
what is left in this process for 100 runs is a fixed cost of the same size as a second
worker's gain: xarray's ``to_zarr`` of the metadata (~20 ms), consolidating (~6 ms) and
opening the store again (~8 ms), all before or after the tasks, when both cores are
otherwise idle. Here the new arrays' ``zarr.json`` documents are rendered from a few rules
(those xarray follows for float64 variables, checked against xarray's own output by the
tests), written while the tasks run; the root's consolidated metadata gets the new entries
in one atomic rewrite of the root ``zarr.json`` after the last task; and the returned array
is built from the Dataset opened at the start plus what was written.

The new variables (as :func:`~lazyspheres.connectivity.store.write_into` writes them):
the connectome ``<name>`` (float64, one uncompressed chunk per run), its group mean
``<name>_group_mean`` (one uncompressed chunk) and, for every stored coordinate ``<key>``
along ``seed``, a copy ``<key>2`` along ``seed2`` (its metadata and chunk files copied, so
its values, codecs and attributes are the store's own). The root is rewritten last: until
then the store lists none of them, and a failure removes the folders this write added.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr
from dask._task_spec import Task
from dask.highlevelgraph import HighLevelGraph
from dask.typing import Key

from lazyspheres._types import Attrs, FloatArray
from lazyspheres.connectivity.store import DirectWrite, write_chunk
from lazyspheres.io.atomic import write_atomically
from lazyspheres.io.zarr_chunks import ZarrChunkReader

__all__ = ["MatrixWrite", "plan_matrix_write"]

ROOT = "zarr.json"
#: xarray's ``_FillValue`` attribute of a float64 variable: NaN, little-endian, base64.
_NAN_FILL = base64.standard_b64encode(np.array(np.nan, dtype="<f8").tobytes()).decode()


def float64_document(
    shape: tuple[int, ...], chunks: tuple[int, ...], dims: tuple[str, ...], attrs: Attrs
) -> Attrs:
    """The ``zarr.json`` xarray writes for an uncompressed float64 variable (NaN fill)."""
    return {
        "shape": list(shape),
        "data_type": "float64",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": "NaN",
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {**attrs, "_FillValue": _NAN_FILL},
        "dimension_names": list(dims),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


@dataclass
class MatrixWrite:
    """One write of a new connectome variable into a local, consolidated result store.

    Attributes
    ----------
    folder : str
        The store's folder.
    root : dict
        Its root ``zarr.json`` as read before the write.
    name : str
        The connectome variable.
    documents : dict
        ``key -> zarr.json`` of every new array.
    copies : dict
        ``new key -> stored key`` of the coordinates copied along ``seed2``.
    """

    folder: str
    root: Attrs
    name: str
    documents: dict[str, Attrs]
    copies: dict[str, str]

    @property
    def mean(self) -> str:
        """The group mean's variable."""
        return f"{self.name}_group_mean"

    def chunks(self, key: str) -> ZarrChunkReader:
        """The chunk files of the new array ``key`` (plain layout, uncompressed)."""
        document = self.documents[key]
        return ZarrChunkReader(
            folder=os.path.join(self.folder, key),
            separator="/",
            prefix="c/",
            shape=tuple(document["shape"]),
            chunk_shape=tuple(document["chunk_grid"]["configuration"]["chunk_shape"]),
            dtype=np.dtype("<f8"),
            compressor=None,
            fill_value=np.nan,
        )

    def run(self, compute: DirectWrite, opened: xr.Dataset) -> xr.DataArray:
        """Compute and write; return the stored variable (lazy), as ``xr.open_zarr`` shows it.

        While the tasks run, the new arrays' metadata is written and the returned array
        built (the group mean comes last). When anything fails, the folders this write
        added are removed and the root is left as it was.
        """
        built: list[xr.DataArray] = []

        def meanwhile() -> None:
            self._write_arrays()
            built.append(self.result(opened))

        try:
            mean = compute(self.chunks(self.name), meanwhile)
            if mean is None:
                raise ValueError("The connectome's tasks returned no group mean.")
            write_chunk(self.chunks(self.mean), (0, 0), mean)
            self._write_root()
        except BaseException:
            self.remove()
            raise
        return built[0].assign_coords(group_mean=(("seed", "seed2"), mean))

    def _write_arrays(self) -> None:
        """Every new array's ``zarr.json``, and the copied coordinates' chunk files."""
        for key, document in self.documents.items():
            _write_json(os.path.join(self.folder, key, ROOT), document)  # makes the folder
        for key, source in self.copies.items():
            chunks = os.path.join(self.folder, source, "c")
            if os.path.isdir(chunks):  # none: the coordinate is its fill value
                shutil.copytree(chunks, os.path.join(self.folder, key, "c"))

    def _write_root(self) -> None:
        # read again: what another writer consolidated meanwhile stays listed
        root = _read_json(os.path.join(self.folder, ROOT)) or self.root
        if not isinstance(root.get("consolidated_metadata", {}).get("metadata"), dict):
            raise ValueError(f"The root of {self.folder} lost its consolidated metadata.")
        root["consolidated_metadata"]["metadata"].update(self.documents)
        _write_json(os.path.join(self.folder, ROOT), root)

    def remove(self) -> None:
        """Remove the folders of the new arrays (the root is untouched until the end)."""
        for key in self.documents:
            shutil.rmtree(os.path.join(self.folder, key), ignore_errors=True)

    def result(self, opened: xr.Dataset) -> xr.DataArray:
        """The stored connectome, lazily read, with the coordinates of the store.

        Its ``group_mean`` coordinate is the caller's to add.
        """
        document = self.documents[self.name]
        dims = ("run", "seed", "seed2")
        coords: dict[str, xr.Variable] = {
            str(key): coord.variable
            for key, coord in opened.coords.items()
            if set(coord.dims) <= set(dims)  # seed2 ones too: an earlier connectome's
        }
        for key, source in self.copies.items():
            stored = opened[source].variable
            coords[key] = xr.Variable(("seed2",), stored.data, stored.attrs, stored.encoding)
        attrs = {
            key: value
            for key, value in document["attributes"].items()
            if key not in ("_FillValue", "coordinates")
        }
        data = _chunk_reads(self.chunks(self.name))
        return xr.DataArray(data, dims=dims, coords=coords, name=self.name, attrs=attrs)


def plan_matrix_write(result: xr.DataArray, folder: str, name: str) -> MatrixWrite | None:
    """A :class:`MatrixWrite` of ``result`` into the store at ``folder``; None if out of reach.

    Out of reach (the caller then writes through xarray): not a ``(run, seed, seed2)``
    float64 result; a store whose root has no consolidated metadata; a new coordinate that
    is not a copy of a stored one along ``seed``; an array of that name already there.
    """
    if result.dims != ("run", "seed", "seed2") or result.dtype != np.float64:
        return None
    root = _read_json(os.path.join(folder, ROOT))
    stored = (root or {}).get("consolidated_metadata", {}).get("metadata")
    if root is None or not isinstance(stored, dict) or root.get("zarr_format") != 3:
        return None
    if name in stored:
        return None
    n_runs, n_seeds = (int(n) for n in result.shape[:2])
    mean = f"{name}_group_mean"
    for key, coord in result.coords.items():  # those stored already: same dims and shape
        there = stored.get(str(key))
        if there is not None and (
            there.get("dimension_names") != list(coord.dims)
            or there.get("shape") != list(coord.shape)
        ):
            return None  # xarray's route says how they differ
    new = sorted(str(key) for key in result.coords if key not in stored and key != "group_mean")
    copies: dict[str, str] = {}
    for key in new:
        source = key[:-1]
        if not key.endswith("2") or stored.get(source, {}).get("dimension_names") != ["seed"]:
            return None
        copies[key] = source
    coordinates = " ".join(sorted([mean, *(k for k in copies if k != "seed2")]))
    documents = {
        name: float64_document(
            (n_runs, n_seeds, n_seeds),
            (1, n_seeds, n_seeds),
            ("run", "seed", "seed2"),
            {**_json_attrs(result.attrs), "coordinates": coordinates},
        ),
        mean: float64_document((n_seeds, n_seeds), (n_seeds, n_seeds), ("seed", "seed2"), {}),
    }
    for key, source in copies.items():
        documents[key] = {**stored[source], "dimension_names": ["seed2"]}
    for key in documents:
        where = os.path.join(folder, key)
        if os.path.exists(os.path.join(where, ROOT)):
            return None  # an array the store does not list: not ours to replace
        shutil.rmtree(where, ignore_errors=True)  # chunk files a killed write left behind
    return MatrixWrite(os.fspath(folder), root, name, documents, copies)


def _json_attrs(attrs: Attrs) -> Attrs:
    """``attrs`` as JSON values (numpy scalars and arrays as Python ones)."""
    plain: Attrs = {}
    for key, value in attrs.items():
        plain[str(key)] = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
    return plain


def _read_json(path: str) -> Attrs | None:
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _write_json(path: str, document: Attrs) -> None:
    """Write ``document`` at ``path`` atomically (never a half-written ``zarr.json``)."""
    write_atomically(path, json.dumps(document, indent=2).encode())


def _read_run(chunks: ZarrChunkReader, index: tuple[int, ...]) -> FloatArray:
    return np.array(chunks.read(index))  # a writable copy, as zarr returns


def _chunk_reads(chunks: ZarrChunkReader) -> da.Array:
    """The ``(run, n, n)`` array of one chunk per run, each read where it is computed."""
    name = "connectome-stored-" + uuid.uuid4().hex  # the files may be rewritten later
    n_runs, *rest = chunks.shape
    layer: dict[Key, Task] = {}
    for run in range(n_runs):
        key = (name, run, 0, 0)
        layer[key] = Task(key, _read_run, chunks, (run, 0, 0))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[])
    sizes = ((1,) * n_runs, *((n,) for n in rest))
    return da.Array(graph, name, chunks=sizes, dtype=chunks.dtype.newbyteorder("="))
