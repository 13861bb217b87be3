"""The errors of a batch's inputs found before any image is read (one line per problem)."""

from __future__ import annotations

from lazyspheres.errors import LazySpheresError

__all__ = ["BatchInputError", "MissingInputsError"]

_MAX_LISTED = 20


def _listing(problems: list[str], advice: str) -> str:
    lines = [f"{len(problems)} problem(s) found before reading any image:"]
    lines += [f"  {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
    lines.append(advice)
    return "\n".join(lines)


class BatchInputError(LazySpheresError, ValueError):
    """Inputs of a batch are wrong; found before any image was read, nothing was written.

    Attributes
    ----------
    problems : list of str
        One short line per problem (``"run id: what is wrong"``).
    advice : str
        What to do next.
    """

    def __init__(self, problems: list[str], advice: str) -> None:
        self.problems = list(problems)
        self.advice = advice
        super().__init__(_listing(problems, advice))


class MissingInputsError(LazySpheresError, FileNotFoundError):
    """Files a batch needs next to its runs (confounds, masks) are missing.

    Attributes are those of :class:`BatchInputError`.
    """

    def __init__(self, problems: list[str], advice: str) -> None:
        self.problems = list(problems)
        self.advice = advice
        super().__init__(_listing(problems, advice))
