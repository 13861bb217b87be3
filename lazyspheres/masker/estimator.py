"""``NiftiSpheresMasker``: nilearn 0.12.1's spheres masker, computed lazily.

The public API (constructor, fitted attributes, methods, messages) is nilearn 0.12.1's
(see the reference page and ``reference/nilearn-0.12.1-deltas.md``). Work is delegated to
:mod:`lazyspheres.masker.signals` (open → extract → clean, lazily),
:mod:`lazyspheres.masker.inverse`, :mod:`lazyspheres.masker.output` and
:mod:`lazyspheres.masker.report`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import numpy.typing as npt
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from lazyspheres._types import UserInput
from lazyspheres.cleaning.options import ConfoundsLike, SampleMaskLike, Standardize
from lazyspheres.masker._logging import describe_images, log, warn
from lazyspheres.masker._sklearn import (
    CACHE_LEVEL_WARNING,
    InputTags,
    cached,
    fit_accepts_deprecated_x,
)
from lazyspheres.masker._types import (
    CleanArgs,
    DataFrameLike,
    DisplayedSpheres,
    DtypeParam,
    MemoryParam,
    NiimgLike,
    SeedsParam,
    TransformOutput,
)
from lazyspheres.masker.inputs import open_images
from lazyspheres.masker.inverse import as_signal_array, signals_to_image
from lazyspheres.masker.output import check_container, wrap_output
from lazyspheres.masker.signals import SignalSpec, transform_signals
from lazyspheres.masker.validation import check_memory, check_params, masker_cleaning
from lazyspheres.masks import binarize_fit_mask
from lazyspheres.smoothing.params import Fwhm

if TYPE_CHECKING:
    from sklearn.utils import Tags

    from lazyspheres.masker.report import HTMLReport
    from lazyspheres.masker.report.data import ReportingData

__all__ = ["InputTags", "NiftiSpheresMasker"]


# auto_wrap_output_keys: scikit-learn's __init_subclass__ keyword (typeshed sees object's)
class NiftiSpheresMasker(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Mean signal in spheres around seed coordinates: nilearn 0.12.1's masker, out of core.

    Drop-in replacement for ``nilearn.maskers.NiftiSpheresMasker`` (0.12.1): same
    constructor, attributes, methods, numbers, warnings and errors, but images are read
    lazily (only the voxels the spheres need; a ``.nii.gz`` in one streaming pass).

    Parameters
    ----------
    seeds : list of triplet of coordinates in native space or None, default=None
        Sphere centres, in the world (mm) space of the images, e.g. MNI coordinates. Also
        accepted: an ``(n, 3)`` array, a DataFrame with ``x, y, z`` columns (its other
        columns label the seeds) and the named sets ``"power2011"``, ``"dosenbach2010"``
        and ``"seitzman2018"``.
    radius : float, default=None
        Sphere radius in mm. ``None`` uses the voxel nearest each seed (nilearn's rules can
        add a second voxel for an off-centre seed).
    mask_img : Niimg-like object, default=None
        Only voxels inside this mask are averaged. It is resampled to each image's grid
        with nearest-neighbour interpolation.
    allow_overlap : bool, default=False
        Whether two spheres may share voxels; if False, shared voxels raise an error.
    smoothing_fwhm : float or int or None, optional.
        Width (full width at half maximum, mm) of a Gaussian smoothing applied to the image
        before averaging; ``None`` does not smooth.
    standardize : {'zscore_sample', 'zscore', 'psc', True, False}, default=False
        How each signal is rescaled after cleaning: ``'zscore_sample'`` centres it and
        divides by the sample standard deviation; ``'zscore'`` (and ``True``) by the
        population standard deviation; ``'psc'`` expresses it in percent of its original
        mean; ``False`` leaves it as is.
    standardize_confounds : bool, default=True
        Whether confound columns are centred and scaled to unit variance before they are
        regressed out.
    high_variance_confounds : bool, default=False
        Whether to compute 5 confounds from the highest-variance voxels of the whole image
        (nilearn's ``high_variance_confounds``) and regress them out.
    detrend : bool, optional
        Whether to remove a linear trend from each signal.
    low_pass : float or int or None, default=None
        Frequencies above this cutoff (Hz) are filtered out; ``None`` for none.
    high_pass : float or int or None, default=None
        Frequencies below this cutoff (Hz) are filtered out; ``None`` for none.
    t_r : float or int or None, default=None
        Time between volumes, in seconds; needed by the filters.
    dtype : dtype like, "auto" or None, default=None
        Convert the image to this type before extraction; ``"auto"`` means int32 for
        integer images and float32 otherwise; ``None`` keeps the stored type.
    memory : None, instance of joblib.Memory, str, or pathlib.Path
        Cache for the extraction (a joblib ``Memory`` or a cache folder); ``None`` does not
        cache.
    memory_level : int, default=1
        How much to cache: higher levels cache more intermediate steps, 0 caches nothing.
    verbose : int, default=0
        Amount of progress messages printed (0 prints none).
    reports : bool, default=True
        Whether ``fit`` keeps what :meth:`generate_report` needs.
    clean_args : dict or None, default=None
        Extra keyword arguments of the cleaning step (``filter``, ``ensure_finite``,
        ``extrapolate``, ``butterworth__order`` ...).
    kwargs : dict
        Deprecated: keyword arguments prefixed with ``clean__`` are passed to ``clean``.
        Use ``clean_args`` instead; the two are mutually exclusive. Kept as the
        ``clean_kwargs`` attribute; ``set_params(kwargs={...})`` replaces them.

    Attributes
    ----------
    clean_args_ : dict
        ``clean_args``, or ``{}`` when it is None.
    clean_kwargs_ : dict
        The deprecated ``clean__*`` keyword arguments without their prefix.
    mask_img_ : nibabel.nifti1.Nifti1Image or None
        None without ``mask_img``; otherwise the mask made binary (uint8, on the mask's own
        grid): 1 where every volume of the mask is finite and non-zero.
    memory_ : joblib.Memory
        The cache used.
    n_elements_ : int
        Number of seeds.
    seeds_ : list of list
        Seed coordinates, one ``[x, y, z]`` list per seed.

    See Also
    --------
    lazyspheres.extract : the same extraction as a function returning a lazy DataArray.
    lazyspheres.clean : the cleaning.

    Notes
    -----
    Deliberate differences from nilearn 0.12.1 (SPEC §3.5): parameters and inputs are
    validated at ``fit``; sphere means of integer images are exact; ``transform`` uses the
    binarised ``mask_img_``, placed where its affine says; ``inverse_transform`` builds the
    spheres with the rules of ``transform``; the caller's image is never modified;
    ``standardize=1`` acts like True; ``set_output`` and ``get_feature_names_out`` exist.
    """

    def __init__(
        self,
        seeds: SeedsParam | None = None,
        radius: float | None = None,
        mask_img: NiimgLike | None = None,
        allow_overlap: bool = False,
        smoothing_fwhm: Fwhm = None,
        standardize: Standardize = False,
        standardize_confounds: bool = True,
        high_variance_confounds: bool = False,
        detrend: bool = False,
        low_pass: float | None = None,
        high_pass: float | None = None,
        t_r: float | None = None,
        dtype: DtypeParam = None,
        memory: MemoryParam = None,
        memory_level: int = 1,
        verbose: int = 0,
        reports: bool = True,
        clean_args: CleanArgs | None = None,
        **kwargs: UserInput,
    ) -> None:
        # Annotations say what each parameter should be; fit checks what it is (set_params,
        # grid searches and untyped callers can set anything).
        self.seeds = seeds
        self.mask_img = mask_img
        self.radius = radius
        self.allow_overlap = allow_overlap
        self.smoothing_fwhm = smoothing_fwhm
        self.standardize = standardize
        self.standardize_confounds = standardize_confounds
        self.high_variance_confounds = high_variance_confounds
        self.detrend = detrend
        self.low_pass = low_pass
        self.high_pass = high_pass
        self.t_r = t_r
        self.dtype = dtype
        self.clean_args = clean_args
        # nilearn 0.12.1 keeps the deprecated **kwargs as the ``clean_kwargs`` attribute; a
        # property over a private slot, so that __init__ sets nothing but the parameters.
        self._clean_kwargs = kwargs
        self.memory = memory
        self.memory_level = memory_level
        self.reports = reports
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn glue
    @property
    def clean_kwargs(self) -> dict[str, UserInput]:
        """The deprecated ``clean__*`` keyword arguments given to the constructor."""
        return self.__dict__.get("_clean_kwargs", {})

    @clean_kwargs.setter
    def clean_kwargs(self, value: dict[str, UserInput]) -> None:
        self._clean_kwargs = value

    def set_params(self, **params: UserInput) -> NiftiSpheresMasker:
        """Set parameters; ``kwargs`` replaces the deprecated ``clean__*`` keyword arguments.

        Parameters
        ----------
        **params : dict
            Estimator parameters; ``kwargs`` (a dict, checked at ``fit``) replaces
            ``clean_kwargs``.

        Returns
        -------
        NiftiSpheresMasker
            The estimator.
        """
        if "kwargs" in params:
            self.clean_kwargs = params.pop("kwargs")
        return super().set_params(**params)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags = InputTags()
        tags.transformer_tags.preserves_dtype = ["float64"]
        tags.requires_fit = True
        return tags

    def _more_tags(self) -> Tags:
        """Estimator tags (the older scikit-learn API)."""
        return self.__sklearn_tags__()

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "seeds_") and hasattr(self, "n_elements_")

    # ------------------------------------------------------------------ fit
    @fit_accepts_deprecated_x
    def fit(self, imgs: NiimgLike | None = None, y: object = None) -> NiftiSpheresMasker:
        """Validate the parameters and seeds, and load the mask (no image data is read).

        All parameters are unused; they are for scikit-learn compatibility. ``imgs`` is
        checked (and its middle volume kept for the report when ``reports=True``).

        Parameters
        ----------
        imgs : 3D/4D Niimg-like object, optional
            Images the masker will be applied to.
        y : None
            This parameter is unused.

        Returns
        -------
        NiftiSpheresMasker
            The fitted masker.
        """
        del y
        checked = check_params(self)
        self._report_content = {
            "description": (
                "This reports shows the regions defined by the spheres of the masker."
            ),
            "warning_message": None,
        }
        self.clean_kwargs_ = checked.clean_kwargs_
        self.clean_args_ = {} if self.clean_args is None else self.clean_args
        self.mask_img_ = self._load_mask()
        self.memory_ = check_memory(self.memory, verbose=int(self.verbose))
        if self.memory_level == 0 and self.memory_.location is not None:
            warn(CACHE_LEVEL_WARNING)
        images = None if imgs is None else open_images(imgs)
        self.seeds_ = checked.seeds_
        self._seed_coords = checked.coords
        self._seed_labels = checked.labels
        self._clean_options = checked.clean_options
        self._reporting_data: ReportingData | None = None
        if self.reports:
            from lazyspheres.masker.report.data import reporting_data

            self._reporting_data = reporting_data(self.seeds_, self.mask_img_, images)
        self.n_elements_ = len(self.seeds_)
        log(self, "Finished fit", self.verbose)
        return self

    def _load_mask(self) -> nib.Nifti1Image | None:
        """``mask_img_``: nonzero (and finite) in every volume, uint8, in the mask's grid."""
        if self.mask_img is None:
            return None
        log(
            self, f"Loading mask from {describe_images(self.mask_img, self.verbose)}", self.verbose
        )
        mask = open_images(self.mask_img).image
        binary = binarize_fit_mask(np.asarray(mask.values), context="mask_img").astype(np.uint8)
        image = nib.Nifti1Image(binary, mask.nifti.grid_affine)
        # Reading the data (nilearn's ``get_data``) fills nibabel's data cache, which changes
        # the image's joblib hash, the key of nilearn-style caches. Filled now, as nilearn's
        # ``mask_img_`` is, the hash of one fit's mask is the same before and after reads.
        image._data_cache = binary
        return image

    # ------------------------------------------------------------------ transform
    def fit_transform(
        self,
        imgs: NiimgLike,
        y: object = None,
        confounds: ConfoundsLike | None = None,
        sample_mask: SampleMaskLike | None = None,
    ) -> TransformOutput:
        """Prepare and perform signal extraction.

        Parameters
        ----------
        imgs : 3D/4D Niimg-like object
            Images to process.
        y : None
            This parameter is unused.
        confounds : numpy.ndarray, str, pathlib.Path, pandas.DataFrame or list, optional
            Confounds timeseries, shape ``(n_scans, n_confounds)`` (see ``clean``).
        sample_mask : array-like, optional
            Volumes to keep (indices or booleans).

        Returns
        -------
        numpy.ndarray
            Signals, ``(n_scans, n_elements)`` (``(n_elements,)`` for a 3D image).
        """
        del y
        return self.fit(imgs).transform(imgs, confounds=confounds, sample_mask=sample_mask)

    def transform(
        self,
        imgs: NiimgLike,
        confounds: ConfoundsLike | None = None,
        sample_mask: SampleMaskLike | None = None,
    ) -> TransformOutput:
        """Extract and clean the sphere signals of images.

        Parameters
        ----------
        imgs : 3D/4D Niimg-like object
            Images to process. If a 3D niimg is provided, a 1D array is returned.
        confounds : numpy.ndarray, str, pathlib.Path, pandas.DataFrame or list, optional
            Confounds timeseries, shape ``(n_scans, n_confounds)`` (see ``clean``).
        sample_mask : array-like, optional
            Volumes to keep (indices or booleans).

        Returns
        -------
        numpy.ndarray
            Signals, ``(n_scans, n_elements)`` (``(n_elements,)`` for a 3D image), or the
            container chosen with :meth:`set_output`.
        """
        check_is_fitted(self)
        signals, ndim = self._signals(
            imgs, confounds, sample_mask, hv=bool(self.high_variance_confounds), wrap=True
        )
        return wrap_output(self, signals, ndim, imgs)

    def transform_single_imgs(
        self,
        imgs: NiimgLike,
        confounds: ConfoundsLike | None = None,
        sample_mask: SampleMaskLike | None = None,
    ) -> np.ndarray:
        """Extract and clean the sphere signals of one image (or one list of 3D images).

        Unlike :meth:`transform`, confounds are passed to the cleaning as given and no
        high-variance confounds are added. The output is always an ndarray.

        Parameters
        ----------
        imgs : 3D/4D Niimg-like object
            Images to process.
        confounds : numpy.ndarray, str, pathlib.Path, pandas.DataFrame or list, optional
            Confounds timeseries (see ``clean``).
        sample_mask : array-like, optional
            Volumes to keep (indices or booleans).

        Returns
        -------
        numpy.ndarray
            Signals, ``(n_scans, n_elements)`` (``(n_elements,)`` for a 3D image).
        """
        check_is_fitted(self)
        signals, ndim = self._signals(imgs, confounds, sample_mask, hv=False, wrap=False)
        values = np.asarray(signals.values)
        return np.atleast_1d(values.squeeze()) if ndim == 3 else values

    def _signals(
        self,
        imgs: NiimgLike,
        confounds: ConfoundsLike | None,
        sample_mask: SampleMaskLike | None,
        *,
        hv: bool,
        wrap: bool,
    ) -> tuple[xr.DataArray, int]:
        spec = SignalSpec(
            coords=self._seed_coords,
            labels=self._seed_labels,
            radius=self.radius,
            mask_img=self.mask_img_,
            allow_overlap=bool(self.allow_overlap),
            smoothing_fwhm=self.smoothing_fwhm,
            dtype=self.dtype,
            cleaning=masker_cleaning(self, self._clean_options),
        )
        func = cached(self, transform_signals, ignore=["verbose", "logger"])
        return func(
            imgs,
            spec,
            confounds,
            sample_mask,
            high_variance_confounds=hv,
            wrap_confounds=wrap,
            verbose=self.verbose,
            logger=self,
        )

    # ------------------------------------------------------------------ inverse
    def inverse_transform(
        self, region_signals: npt.ArrayLike | xr.DataArray | DataFrameLike
    ) -> nib.Nifti1Image:
        """Paint sphere signals back into an image on the mask grid.

        The mask given at initialization is taken into account. Throws an error if
        ``mask_img==None``.

        Parameters
        ----------
        region_signals : 1D/2D numpy.ndarray
            Extracted signal, ``(n_elements,)`` or ``(n_scans, n_elements)``; DataFrames
            and DataArrays are accepted too.

        Returns
        -------
        nibabel.nifti1.Nifti1Image
            3D image for 1D signals, 4D for 2D signals, on the grid of ``mask_img_``,
            float64.
        """
        check_is_fitted(self)
        signals = as_signal_array(region_signals, self.n_elements_)
        log(self, "Computing image from signals", self.verbose)
        if self.mask_img_ is None:
            raise ValueError(
                "Please provide mask_img at initialization to provide a reference for the "
                "inverse_transform."
            )
        return signals_to_image(
            signals, self.mask_img_, self._seed_coords, self.radius, bool(self.allow_overlap)
        )

    # ------------------------------------------------------------------ output
    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Output feature names: ``niftispheresmasker0``, ``niftispheresmasker1``, ...

        Parameters
        ----------
        input_features : None
            Unused (the input is images).

        Returns
        -------
        numpy.ndarray of str
        """
        del input_features
        check_is_fitted(self)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_elements_)], dtype=object)

    def set_output(self, *, transform: str | None = None) -> NiftiSpheresMasker:
        """Set the output container of :meth:`transform` and :meth:`fit_transform`.

        Parameters
        ----------
        transform : {"default", "pandas", "polars", "xarray"} or None
            ``"default"``: nilearn's ndarray; ``"pandas"`` / ``"polars"``: a DataFrame
            with columns :meth:`get_feature_names_out`; ``"xarray"``: a labelled
            DataArray ``(time, seed)``. None leaves the setting unchanged.

        Returns
        -------
        NiftiSpheresMasker
            The estimator.
        """
        if transform is None:
            return self
        check_container(transform)
        if not hasattr(self, "_sklearn_output_config"):
            self._sklearn_output_config = {}
        self._sklearn_output_config["transform"] = transform
        return self

    # ------------------------------------------------------------------ report
    def generate_report(self, displayed_spheres: DisplayedSpheres = "all") -> HTMLReport:
        """Generate an HTML report for current ``NiftiSpheresMasker`` object.

        Requires matplotlib for the figures (``pip install 'lazyspheres[report]'``).

        Parameters
        ----------
        displayed_spheres : int, or list, or ndarray, or "all", default="all"
            Which spheres get a figure: "all"; a list or array of sphere indices, shown
            in that order; an int n for the first n spheres.

        Returns
        -------
        lazyspheres.masker.report.HTMLReport
            The report (``_repr_html_``, ``save_as_html``, ``open_in_browser``).
        """
        from lazyspheres.masker.report import generate_report

        return generate_report(self, displayed_spheres)
