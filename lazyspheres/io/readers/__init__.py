"""Image readers: one interface (:class:`ImageReader`) over every storage lazyspheres reads.

See :mod:`lazyspheres.io.readers.base` for the interface and
:mod:`lazyspheres.io.readers.lazy` for how an image's Dask array is built over its reader.
"""
