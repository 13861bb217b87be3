"""The drop-in ``NiftiSpheresMasker`` (nilearn 0.12.1's API, lazy computation).

Modules: ``estimator`` (the class), ``validation`` (parameter checks at fit), ``inputs``
(niimg-like inputs opened lazily), ``signals`` (extraction and cleaning), ``inverse``
(``inverse_transform``), ``output`` (``set_output`` containers), ``report`` (HTML report).
"""

from __future__ import annotations

from lazyspheres.masker.estimator import NiftiSpheresMasker

__all__ = ["NiftiSpheresMasker"]
