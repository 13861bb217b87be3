"""Reading and writing images: NIfTI headers, byte sources, streaming inflate, xarray backend."""
