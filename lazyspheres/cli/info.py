"""``lazyspheres info``: what the header or the store metadata says (no voxel is read)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import zarr

    from lazyspheres._types import StorageOptions

__all__ = ["info"]


def info(args: argparse.Namespace) -> int:
    """Print the facts of a NIfTI image, a Zarr image or a result store (text or JSON)."""
    from lazyspheres.cli.common import storage_options
    from lazyspheres.io.zarr_image import is_zarr_source

    options = storage_options(args.storage_option)
    source: str = args.source
    try:
        if is_zarr_source(source):
            facts = _zarr_facts(source, options)
        else:
            facts = _nifti_facts(source, options)
    except ImportError as error:  # fsspec's "Install s3fs to access S3" for Zarr URLs
        if "lazyspheres[cloud]" in str(error):
            raise
        raise ImportError(
            f"{args.source}: {error}. Install the cloud extras: pip install 'lazyspheres[cloud]'."
        ) from error
    except (OSError, ValueError, TypeError, KeyboardInterrupt):
        raise  # main prints these as one line, as for extract
    except Exception as error:  # a cloud client's own errors (botocore, aiohttp, ...)
        raise OSError(f"{args.source}: {type(error).__name__}: {error}") from error
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return 0
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        if key == "affine" and isinstance(value, list):
            print(f"{key:<{width}}  " + ("\n" + " " * (width + 2)).join(map(str, value)))
        else:
            print(f"{key:<{width}}  {value}")
    return 0


def _nifti_facts(source: str, options: StorageOptions) -> dict[str, object]:
    import numpy as np

    from lazyspheres.io.inflate import choose_engine
    from lazyspheres.io.open import image_from_file
    from lazyspheres.io.reader import NiftiFile

    nifti = NiftiFile.open(source, options or None)
    layout = nifti.layout
    image = image_from_file(nifti)
    return {
        "source": nifti.source.location,
        "format": "nifti",
        "shape": list(layout.shape),
        "dims": list(image.dims),
        "dtype": str(layout.raw_dtype.newbyteorder("=")),
        "values_dtype": str(layout.dtype),
        "scaling": None
        if not layout.is_scaled
        else {"slope": layout.slope, "inter": layout.inter},
        "voxel_size_mm": [round(float(v), 6) for v in image.nifti.voxel_size],
        "t_r_s": layout.t_r,
        "affine": np.round(layout.affine, 6).tolist(),
        "sform_code": layout.sform_code,
        "qform_code": layout.qform_code,
        "compression": nifti.source.compression or "none",
        "inflate_engine": choose_engine() if nifti.source.compression else None,
        "size_bytes": nifti.source.size,
        "data_bytes": layout.data_bytes,
        "chunks": [list(c) for c in image.chunks or ()],
    }


def _zarr_facts(source: str, options: StorageOptions) -> dict[str, object]:
    import zarr

    from lazyspheres.batch.store import READABLE_FORMATS

    group = zarr.open_group(source, mode="r", storage_options=options or None)
    if group.attrs.get("store_format") in READABLE_FORMATS:
        return _results_facts(source, group)
    import numpy as np

    from lazyspheres.io.zarr_image import IMAGE_ATTR, IMAGE_VARIABLE, open_zarr_image

    image = open_zarr_image(source, storage_options=options or None)
    array = group[IMAGE_VARIABLE]
    if not isinstance(array, zarr.Array):
        raise ValueError(f"{source}: {IMAGE_VARIABLE!r} is a group, not the image array.")
    meta = image.coords["nifti_meta"].attrs
    stored = group.attrs.get(IMAGE_ATTR, {})
    info = dict(stored) if isinstance(stored, Mapping) else {}
    return {
        "source": source,
        "format": "zarr image (lazyspheres.to_zarr_image)",
        "shape": list(image.shape),
        "dims": list(image.dims),
        "dtype": str(array.dtype),
        "values_dtype": str(image.dtype),
        "scaling": None
        if meta.get("scl_slope") is None
        else {"slope": meta["scl_slope"], "inter": meta["scl_inter"]},
        "voxel_size_mm": [round(float(v), 6) for v in image.nifti.voxel_size],
        "t_r_s": image.nifti.t_r,
        "affine": np.round(image.nifti.affine, 6).tolist(),
        "sform_code": meta.get("sform_code"),
        "qform_code": meta.get("qform_code"),
        "compression": [type(c).__name__ for c in array.compressors] or "none",
        "chunks": list(array.chunks),
        "complete": info.get("complete"),
        "converted_from": info.get("source"),
    }


def _results_facts(source: str, group: zarr.Group) -> dict[str, object]:
    import numpy as np

    flags = np.asarray(_array(group, "complete")[:], dtype=bool)
    runs = [str(r) for r in np.asarray(_array(group, "run")[:])]
    failed = json.loads(str(group.attrs.get("failed") or "{}"))
    return {
        "source": source,
        "format": f"result store ({group.attrs['store_format']})",
        "runs": len(runs),
        "complete_runs": int(flags.sum()),
        "incomplete": [r for r, ok in zip(runs, flags, strict=True) if not ok][:20],
        "failed": failed,
        "complete": bool(group.attrs.get("complete")),
        "seeds": int(_array(group, "seed").shape[0]),
        "time": int(_array(group, "time").shape[0]),
        "dtype": str(_array(group, "signals").dtype),
        "parameters": json.loads(str(group.attrs["parameters"])),
        "lazyspheres_version": group.attrs.get("lazyspheres_version"),
    }


def _array(group: zarr.Group, name: str) -> zarr.Array:
    import zarr

    array = group[name]
    if not isinstance(array, zarr.Array):
        raise ValueError(f"{group.store}: {name!r} is a group, not an array.")
    return array


# ---------------------------------------------------------------------------- extract
