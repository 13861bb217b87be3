"""Messages of the library, spoken in the command line's words.

The library's errors name Python keywords (``overwrite=True``, ``clean={'fill_na': 'zero'}``)
and say "call extract_many again". A user at the shell typed flags, so every message the
command line prints goes through :func:`to_cli`, which names the flags instead, and
through :func:`hide_temporary`, which never shows the temporary store tables are written
from.
"""

from __future__ import annotations

import re

from lazyspheres.batch.checks import FILL_NA_ADVICE

__all__ = ["NEXT_RESUME", "failure_lines", "hide_temporary", "to_cli"]

NEXT_RESUME = "run the same command with --resume"

# Whole advice sentences first, then fragments; applied in order.
_SENTENCES = [
    (FILL_NA_ADVICE, "Next: run the same command with --fill-na zero (or mean, interpolate)."),
    (
        "Fill them with fill_na='zero', 'mean' or 'interpolate', or censor those volumes "
        "with sample_mask.",
        "Fill them with --fill-na zero (or mean, interpolate).",
    ),
    (
        "Finish it with extract_many(..., resume=True) and the same arguments, or open it "
        "with open_results(store, allow_partial=True).",
        f"Next: {NEXT_RESUME}.",
    ),
    ("pass the store's parameters", "repeat the store's options"),
]
_FRAGMENTS = [
    ("call extract_many again with the same arguments", NEXT_RESUME),
    ("call extract_many again", "run the command again"),
    ("resume=True", "--resume"),
    ("overwrite=True", "--overwrite"),
    ("allow_overlap=True", "--allow-overlap"),
    ("on_empty='nan'", "--on-empty nan"),
    ("mask_img=None", "no --mask"),
    ("confounds=None", "no --confounds"),
    (
        "Pass confounds and mask_img explicitly (one per run) or None",
        "Pass --confounds and --mask with one file per run, or leave them out",
    ),
    ("Pass confounds explicitly (one per run)", "Pass --confounds with one file per run"),
    ("Pass mask_img explicitly (one per run)", "Pass --mask explicitly"),
    ("Pass mask_img explicitly", "Pass --mask explicitly"),
    ("confound_columns", "--confound-columns"),
    ("fill_na=", "--fill-na "),
    ("storage_options={'anon': True}", "--storage-option anon=true"),
]
_TEMPORARY = re.compile(r"\S*lazyspheres-extract-[^\s/\\]+[/\\]results\.zarr\S*")
_MAX_LINE = 240


def to_cli(text: str) -> str:
    """``text`` with Python keywords replaced by the command line's flags."""
    for python, flags in _SENTENCES + _FRAGMENTS:
        text = text.replace(python, flags)
    return hide_temporary(text)


def hide_temporary(text: str) -> str:
    """``text`` without the path of the temporary store .tsv/.csv outputs go through."""
    return _TEMPORARY.sub("(temporary store)", text)


def failure_lines(failures: dict[str, str], sources: dict[str, str]) -> list[str]:
    """One short line per failed run: ``run id: ErrorType: first line of the message``.

    ``sources`` maps run ids to their sources, whose repetition at the start of a failure
    text is dropped (the run id names the run).
    """
    lines = []
    for run_id, text in failures.items():
        source = sources.get(run_id)
        if source and text.startswith(f"{source}: "):
            text = text[len(source) + 2 :]
        text = to_cli(text.strip().splitlines()[0] if text.strip() else text)
        if len(text) > _MAX_LINE:
            text = text[: _MAX_LINE - 1] + "…"
        lines.append(f"  {run_id}: {text}")
    return lines
