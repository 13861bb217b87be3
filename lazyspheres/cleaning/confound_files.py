"""Reading confounds tables from CSV, TSV and whitespace-separated text files.

Files are read the way nilearn 0.12.1 reads them: as whitespace-separated numbers first; if
that fails, the delimiter (space, tab, comma or semicolon) is sniffed from the first line. A
first line that is not numbers is a header and gives the column names. Cells that are not
numbers (fMRIPrep's ``n/a``) become NaN. Kept from nilearn: a pandas CSV written with its
index gets the index as an extra regressor.

Differences (documented, tested in ``tests/test_cleaning_errors.py``):

- a headerless file whose first cell is ``n/a`` is read as data (nilearn takes its first line
  for a header and then reports a length mismatch);
- single-column files are read as one regressor (nilearn crashes on them);
- a missing file raises :class:`~lazyspheres.cleaning.exceptions.ConfoundsFileNotFoundError`
  (a FileNotFoundError, as in nilearn) naming the path.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from lazyspheres.cleaning.exceptions import CleaningTypeError, ConfoundsFileNotFoundError

__all__ = ["read_confounds_file"]

_NA_TOKENS = {"n/a", "na", "nan", "null", "none", "-nan", "+nan"}


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    tokens = line.split(delimiter) if delimiter else line.split()
    return [token.strip().strip("'\"") for token in tokens]


def _is_header(first_line: str, delimiter: str | None) -> bool:
    """A first line with a token that is neither a number nor an n/a marker is a header."""
    tokens = _split(first_line.rstrip("\r\n"), delimiter)
    return any(not _is_number(t) and t.lower() not in _NA_TOKENS for t in tokens)


def read_confounds_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str] | None]:
    """Read a confounds table from a CSV, TSV or whitespace-separated text file.

    Parameters
    ----------
    path : str or path-like
        The file. Cells that are not numbers (fMRIPrep's ``n/a``) are read as NaN.

    Returns
    -------
    values : ndarray of float64, shape (n_rows, n_columns)
        The table, header excluded.
    names : list of str or None
        Column names from the header line, if the file has one.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    TypeError
        The delimiter cannot be determined ("Could not read CSV file").
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfoundsFileNotFoundError(f"Confounds file not found: '{path}'.")
    with open(path, encoding=None) as handle:
        first_line = handle.readline()
    delimiter: str | None = None
    try:
        # Whitespace-separated numbers (e.g. SPM rp_*.txt) parse as they are.
        skip = int(_is_header(first_line, None))
        values = np.genfromtxt(path, loose=False, encoding=None, skip_header=skip, ndmin=2)
    except ValueError:
        try:
            delimiter = csv.Sniffer().sniff(first_line, " \t,;").delimiter
        except csv.Error as exc:
            if len(first_line.split()) > 1:
                raise CleaningTypeError(
                    f"Could not read CSV file [{path}]: {exc.args[0]}"
                ) from exc
            delimiter = None  # a single column: nothing to sniff
        skip = int(_is_header(first_line, delimiter))
        values = np.genfromtxt(path, delimiter=delimiter, encoding=None, skip_header=skip, ndmin=2)
    names = _split(first_line.rstrip("\r\n"), delimiter) if skip else None
    if names is not None and len(names) != values.shape[1]:
        names = None
    return np.asarray(values, dtype=np.float64), names
