"""Header fuzzing: lazyspheres reads every file nibabel reads, and refuses the rest clearly.

Each mutant is a tiny image (4×5×3×6 generated, or one of nibabel's real test files) with one
to three header fields set to edge values, sometimes truncated, as ``.nii`` or ``.nii.gz``,
NIfTI-1 or NIfTI-2 (see ``header_mutants.py``). nibabel 5 is the oracle:

* nibabel loads it → :func:`lazyspheres.open_nifti` loads it, with exactly the same values,
  and :func:`lazyspheres.extract` extracts from it (or refuses a singular affine clearly);
  every repair nibabel makes is warned about with a ``HeaderRepairWarning``;
* nibabel refuses it → lazyspheres raises one of ``EXPECTED_ERRORS``, never a raw exception.

Two documented deviations (``lazyspheres.io.header_checks``): a ``vox_offset`` of 0 is read
from just after the header (nibabel reads the header itself as data), and a ``.nii.gz`` cut
short after its data is refused (lazyspheres verifies the gzip trailer; nibabel does not).

The hypothesis profile is derandomized with no example database, so every CI run tries the
same mutants; each test counts the mutants it tried and asserts the total.
"""

from __future__ import annotations

import io

import header_mutants as hm
import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lazyspheres
from lazyspheres.errors import HeaderRepairWarning, ImageFormatError, TruncatedImageError

pytestmark = pytest.mark.timeout(300)

GENERATED = hm.generated_bases(np.random.default_rng(20))
REAL = hm.real_bases()
# Mutants per test; the four tests together try MIN_MUTANTS or more.
EXAMPLES = {"nifti1": 400, "nifti2": 300, "real": 200, "truncated": 150}
MIN_MUTANTS = 1000
assert sum(EXAMPLES.values()) >= MIN_MUTANTS

# nibabel's header diagnosis phrase -> the field lazyspheres' repair warning names.
_NIBABEL_REPAIRS = {
    "sizeof_hdr should be": "sizeof_hdr",
    "bitpix does not match": "bitpix",
    "pixdim[1,2,3]": "pixdim[1:4]",
    "qform_code": "qform_code",
    "sform_code": "sform_code",
}


def _profile(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


@st.composite
def _change(draw, base: hm.Base) -> tuple[str, int, object]:
    table = dict(hm.FIELD_VALUES)
    if base.nifti2:
        table = {k: v + hm.NIFTI2_VALUES.get(k, ()) for k, v in table.items()}
        table["eol_check"] = hm.NIFTI2_VALUES["eol_check"]
    name = draw(st.sampled_from(sorted(table)))
    return name, draw(st.integers(0, 7)), draw(st.sampled_from(table[name]))


@st.composite
def mutants(draw, bases: list[hm.Base], *, truncate_only: bool = False) -> hm.Mutant:
    base = draw(st.sampled_from(bases))
    changes = [] if truncate_only else draw(st.lists(_change(base), min_size=1, max_size=3))
    if truncate_only:
        keep = draw(st.floats(0.0, 0.999))
    else:
        keep = draw(st.one_of(st.none(), st.none(), st.none(), st.floats(0.05, 0.999)))
    return hm.Mutant(base, changes, keep=keep, gzipped=draw(st.booleans()))


def _diagnosed_repairs(mutant: hm.Mutant) -> set[str]:
    """Fields nibabel repairs in this mutant's header (from its own diagnosis)."""
    blob = mutant.content()
    if mutant.gzipped:
        import zlib

        blob = zlib.decompressobj(wbits=31).decompress(blob, 600)
    klass = nib.Nifti2Header if mutant.base.nifti2 else nib.Nifti1Header
    if blob[344:348].rstrip(b"\x00") in (b"n+1", b"ni1"):
        klass = nib.Nifti1Header
    if len(blob) < klass.sizeof_hdr:
        return set()
    try:
        text = klass.diagnose_binaryblock(blob[: klass.sizeof_hdr])
    except Exception:  # nibabel cannot even diagnose it: no repair expected
        return set()
    return {field for phrase, field in _NIBABEL_REPAIRS.items() if phrase in text}


def _offset_zero(mutant: hm.Mutant, folder) -> bool:
    """Whether the mutant's header stores vox_offset 0 (lazyspheres' documented repair)."""
    blob = io.BytesIO(mutant.content())
    if mutant.gzipped:
        import gzip

        try:
            head = gzip.GzipFile(fileobj=blob).read(600)
        except Exception:
            return False
    else:
        head = blob.read(600)
    try:
        header = nib.Nifti1Header(head[:348], check=False)
        if head[344:348].rstrip(b"\x00") not in (b"n+1", b"ni1"):
            header = nib.Nifti2Header(head[:540], check=False)
        return float(header["vox_offset"]) == 0
    except Exception:
        return False


def check_mutant(mutant: hm.Mutant, folder) -> str:
    """Hold lazyspheres to nibabel on one mutant; return the outcome's category."""
    path = mutant.write(folder)
    label = mutant.describe()
    theirs = hm.nibabel_outcome(path)
    ours = hm.lazyspheres_outcome(path, extract=True)
    if ours.error is not None:
        assert hm.is_clear(ours.error), f"raw {type(ours.error).__name__} on {label}: {ours.error}"
        assert (
            str(path) in str(ours.error)
            or isinstance(ours.error, FileNotFoundError)
            or ("affine" in str(ours.error))
        ), f"the error does not name the file: {ours.error}"
    assert not hm.other_warnings(ours), label
    if ours.extract_error is not None:  # only an image whose affine cannot place a sphere
        assert isinstance(ours.extract_error, ImageFormatError), repr(ours.extract_error)
        assert "affine" in str(ours.extract_error), label
    offset_zero = _offset_zero(mutant, folder)
    if theirs.loaded and not ours.loaded:
        truncated_gzip = mutant.gzipped and mutant.keep is not None
        assert (truncated_gzip and isinstance(ours.error, TruncatedImageError)) or (
            "vox_offset" in str(ours.error)
        ), f"nibabel reads {label} but lazyspheres refuses it: {ours.error!r}"
        return "nibabel only (documented)"
    if ours.loaded:
        assert theirs.loaded or offset_zero, f"lazyspheres reads {label}; nibabel does not"
        if offset_zero:
            assert any("vox_offset" in m for m in hm.repair_warnings(ours)), label
            return "repaired vox_offset 0"
        assert ours.values.shape == theirs.values.shape, label
        np.testing.assert_array_equal(ours.values, theirs.values, err_msg=label)
        np.testing.assert_allclose(ours.affine, theirs.affine, rtol=1e-6, err_msg=label)
        warned = " ".join(hm.repair_warnings(ours))
        for field in _diagnosed_repairs(mutant):
            assert field in warned, f"nibabel repairs {field} in {label}; no warning: {warned}"
        return "both read"
    return "both refuse"


def _run(bases, examples: int, tmp_path, *, truncate_only: bool = False) -> dict[str, int]:
    tried: dict[str, int] = {}

    @_profile(examples)
    @given(mutants(bases, truncate_only=truncate_only))
    def one(mutant: hm.Mutant) -> None:
        outcome = check_mutant(mutant, tmp_path)
        tried[outcome] = tried.get(outcome, 0) + 1

    one()
    print(f"{sum(tried.values())} mutants: {tried}")  # shown with -s, and on failure
    assert sum(tried.values()) >= examples, tried  # the profile is derandomized: all run
    return tried


def test_nifti1_header_mutants(tmp_path):
    bases = [b for b in GENERATED if not b.nifti2]
    tried = _run(bases, EXAMPLES["nifti1"], tmp_path)
    assert tried.get("both read", 0) > 0, tried
    assert tried.get("both refuse", 0) > 0, tried


def test_nifti2_header_mutants(tmp_path):
    bases = [b for b in GENERATED if b.nifti2]
    tried = _run(bases, EXAMPLES["nifti2"], tmp_path)
    assert tried.get("both read", 0) > 0, tried
    assert tried.get("both refuse", 0) > 0, tried


def test_real_file_mutants(tmp_path):
    tried = _run(REAL, EXAMPLES["real"], tmp_path)
    assert tried.get("both read", 0) > 0, tried


def test_truncated_bodies(tmp_path):
    tried = _run(GENERATED + REAL, EXAMPLES["truncated"], tmp_path, truncate_only=True)
    assert tried.get("both refuse", 0) > 0, tried


def test_vox_offset_zero_is_repaired_never_read_as_data(tmp_path):
    base = GENERATED[0]
    for gzipped in (False, True):
        path = hm.Mutant(base, [("vox_offset", None, 0)], gzipped=gzipped).write(tmp_path)
        intact = hm.Mutant(base, [], gzipped=gzipped).write(tmp_path, "intact")
        with pytest.warns(HeaderRepairWarning, match=r"vox_offset = 0.*byte 352"):
            ours = np.asarray(lazyspheres.open_nifti(path).values)
        np.testing.assert_array_equal(ours, np.asanyarray(nib.load(intact).dataobj))


def test_header_error_names_file_field_value_and_expectation(tmp_path):
    cases = {
        "datatype": (-1, r"field datatype = -1, expected one of"),
        "scl_inter": (float("inf"), r"field scl_inter = inf, expected a finite number"),
        "vox_offset": (float("inf"), r"field vox_offset = inf, expected a whole number"),
    }
    base = GENERATED[2]  # scaled, so scl_inter matters
    for name, (value, pattern) in cases.items():
        path = hm.Mutant(base, [(name, None, value)]).write(tmp_path, name)
        with pytest.raises(ImageFormatError, match=pattern) as caught:
            lazyspheres.open_nifti(path)
        assert str(path) in str(caught.value)


def test_nibabel_repairs_are_repaired_with_a_warning(tmp_path):
    base = GENERATED[0]
    for changes, field in [
        ([("sizeof_hdr", None, 349)], "sizeof_hdr"),
        ([("magic", None, b"ni1")], "magic"),
        ([("bitpix", None, 7)], "bitpix"),
        ([("sform_code", None, 99)], "sform_code"),
    ]:
        path = hm.Mutant(base, changes).write(tmp_path, field)
        with pytest.warns(HeaderRepairWarning, match=rf"{field}") as caught:
            ours = np.asarray(lazyspheres.open_nifti(path).values)
        assert str(path) in str(caught[0].message)
        np.testing.assert_array_equal(ours, np.asanyarray(nib.load(path).dataobj))


def test_gzip_claiming_more_than_it_can_hold_is_refused_before_allocating(tmp_path):
    base = next(b for b in GENERATED if b.nifti2)
    path = hm.Mutant(base, [("dim", 1, 2**40)], gzipped=True).write(tmp_path)
    with pytest.raises(TruncatedImageError, match="inflates to at most"):
        lazyspheres.open_nifti(path)
