"""The command line, in-process (``main([...])``) and as a subprocess; help examples run."""

from __future__ import annotations

import glob
import json
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from batch_helpers import run_affine, world_seeds, write_runs

import lazyspheres as ls
from lazyspheres import datasets
from lazyspheres.batch import open_results
from lazyspheres.cli import main
from lazyspheres.cli.parser import help_examples

# nilearn 0.12.1's DeprecationWarning on confound standardisation, from the reference cleans
pytestmark = pytest.mark.filterwarnings("ignore:The default strategy for standardize")


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("cli-bids"), n_subjects=2, n_runs=1, n_volumes=24)


@pytest.fixture(scope="module")
def seeds_csv(small_runs, tmp_path_factory):
    xyz = world_seeds(run_affine(small_runs[0]))
    path = tmp_path_factory.mktemp("seeds") / "seeds.csv"
    frame = pd.DataFrame(xyz, columns=["x", "y", "z"]).assign(label=["a", "b", "c", "d"])
    frame.to_csv(path, index=False)
    return path, xyz


def confounds_path(run):
    return str(run).split("_space-")[0] + "_desc-confounds_timeseries.tsv"


def _files_for_examples(folder, small_runs, seeds_csv):
    """Create every file the help examples name."""
    # a 4 mm MNI grid: the named seed sets fit, and the files are small
    datasets.write_bold(folder / "bold.nii.gz", 6, shape=(46, 55, 46))
    for name, run in zip(("run1.nii.gz", "run2.nii.gz"), small_runs, strict=True):
        (folder / name).write_bytes(run.read_bytes())
    (folder / "seeds.csv").write_bytes(seeds_csv[0].read_bytes())
    datasets.write_dataset(folder / "derivatives", 2, 1, n_volumes=24, shape=(46, 55, 46))


def test_every_help_example_runs_as_printed(tmp_path, monkeypatch, small_runs, seeds_csv, capsys):
    _files_for_examples(tmp_path, small_runs, seeds_csv)
    monkeypatch.chdir(tmp_path)
    examples = help_examples()
    assert len(examples) >= 10
    for command in examples:
        words = shlex.split(command)
        assert words[0] == "lazyspheres"
        argv = []
        for word in words[1:]:  # as a shell expands globs
            argv += sorted(glob.glob(word)) if glob.has_magic(word) and glob.glob(word) else [word]
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"{command}\n{captured.err}"
    assert open_results(tmp_path / "results.zarr").sizes == {"run": 2, "time": 24, "seed": 264}
    assert open_results(tmp_path / "dosenbach.zarr").sizes["seed"] == 160
    assert pd.read_csv(tmp_path / "signals.tsv", sep="\t").shape == (6, 264)
    assert pd.read_csv(tmp_path / "run2.csv").columns.tolist() == ["a", "b", "c", "d"]
    assert (tmp_path / "demo-batch" / "results.zarr").is_dir()


def test_extract_tables_with_cleaning_equal_the_library(small_runs, seeds_csv, tmp_path, capsys):
    seeds, xyz = seeds_csv
    argv = [
        "extract",
        *map(str, small_runs),
        "--seeds",
        str(seeds),
        "--radius",
        "3",
        "--detrend",
        "--standardize",
        "--low-pass",
        "0.2",
        "--t-r",
        "2",
        "--confounds",
        *map(confounds_path, small_runs),
        "--confound-columns",
        "trans_?, csf",
        "--out",
        str(tmp_path / "tables" / "{run}.tsv"),
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for run in small_runs:
        run_id = run.name.split("_space-")[0]
        table = pd.read_csv(tmp_path / "tables" / f"{run_id}.tsv", sep="\t")
        assert table.columns.tolist() == ["a", "b", "c", "d"]
        confounds = pd.read_csv(confounds_path(run), sep="\t")[
            ["trans_x", "trans_y", "trans_z", "csf"]
        ]
        expected = ls.clean(
            ls.extract(run, xyz, 3.0).values,
            detrend=True,
            standardize="zscore_sample",
            low_pass=0.2,
            t_r=2.0,
            confounds=confounds,
        )
        np.testing.assert_allclose(table.to_numpy(), expected, rtol=1e-6)  # TSV text: %.7g-ish
        assert f"-> {tmp_path / 'tables' / run_id}.tsv (24 volumes, 4 seeds)" in printed


def test_extract_store_resume_and_errors(small_runs, seeds_csv, tmp_path, capsys):
    seeds = str(seeds_csv[0])
    store = tmp_path / "r.zarr"
    base = ["extract", *map(str, small_runs), "--seeds", seeds, "--radius", "3", "--no-progress"]
    assert main([*base, "--out", str(store)]) == 0
    assert (
        f"{store}: 2 of 2 run(s) complete (4 seeds, up to 24 volumes)" in capsys.readouterr().out
    )

    assert main([*base, "--out", str(store)]) == 2
    assert "add --resume to finish or update it, or --overwrite" in capsys.readouterr().err
    assert main([*base, "--out", str(store), "--resume"]) == 0
    assert "2 of 2 run(s) complete" in capsys.readouterr().out
    assert main([*base, "--out", str(store), "--resume", "--detrend"]) == 2
    assert "clean: stored {}, requested {'detrend': True}" in capsys.readouterr().err

    assert main([*base, "--out", str(tmp_path / "x.tsv")]) == 2
    assert "has no {name} or {run} placeholder" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "x.nc")]) == 2
    assert "use a .zarr store or .tsv/.csv" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "y.zarr"), "--confounds", "a.tsv"]) == 2
    assert "--confounds got 1 file(s) for 2 run(s)" in capsys.readouterr().err

    broken = tmp_path / "sub-03_task-rest_bold.nii.gz"
    broken.write_bytes(small_runs[0].read_bytes()[:5000])
    code = main(
        [
            "extract",
            *map(str, small_runs),
            str(broken),
            *base[-5:],
            "--out",
            str(tmp_path / "z.zarr"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "1 run(s) failed:\n  sub-03_task-rest: TruncatedImageError:" in err
    assert f"2 of 3 run(s) are complete in {tmp_path / 'z.zarr'}" in err
    assert err.rstrip().endswith(
        "run the same command with --resume (complete runs are not redone)."
    )


def test_info_on_nifti_zarr_image_and_result_store(small_runs, seeds_csv, tmp_path, capsys):
    image = tmp_path / "run.zarr"
    ls.to_zarr_image(small_runs[0], image)
    assert main(["info", str(image), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["shape"] == [20, 24, 20, 24]
    assert facts["chunks"] == [16, 16, 16, 24]
    assert facts["complete"] is True
    assert facts["converted_from"] == str(small_runs[0])
    np.testing.assert_allclose(facts["affine"], run_affine(small_runs[0]), atol=1e-6)

    assert main(["info", str(small_runs[0])]) == 0
    text = capsys.readouterr().out
    assert "compression" in text
    assert "gzip" in text

    store = tmp_path / "r.zarr"
    ls.extract_many(small_runs, seeds_csv[1], 3.0, store=store, progress=False)
    assert main(["info", str(store), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["runs"] == facts["complete_runs"] == 2
    assert facts["complete"] is True
    assert facts["parameters"]["radius"] == 3.0


def test_subprocess_module_and_script(small_runs, seeds_csv, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lazyspheres.cli", "info", str(small_runs[0]), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["shape"] == [20, 24, 20, 24]

    out = tmp_path / "signals.csv"
    command = f"lazyspheres extract {shlex.quote(str(small_runs[0]))} --seeds "
    command += f"{shlex.quote(str(seeds_csv[0]))} --radius 3 --out {shlex.quote(str(out))}"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    expected = ls.extract(small_runs[0], seeds_csv[1], 3.0).values
    np.testing.assert_allclose(pd.read_csv(out).to_numpy(), expected, rtol=1e-6)


def test_missing_run_is_a_failed_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["extract", "missing.nii.gz", "--seeds", "power2011", "--out", "x.zarr"]) == 1
    err = capsys.readouterr().err
    assert "  missing: FileNotFoundError: File not found" in err
    assert "No run is complete in x.zarr" in err


def test_zscore_deprecation_only_when_the_user_chose_zscore(
    small_runs, seeds_csv, tmp_path, capsys
):
    """nilearn warns on every confound standardisation; the CLI's default is zscore_sample."""
    base = [
        "extract",
        str(small_runs[0]),
        "--seeds",
        str(seeds_csv[0]),
        "--radius",
        "3",
        "--confounds",
        confounds_path(small_runs[0]),
        "--confound-columns",
        "csf",
        "--no-progress",
    ]
    for options in ([], ["--standardize"], ["--standardize", "zscore_sample", "--detrend"]):
        assert main([*base, *options, "--out", str(tmp_path / "a.tsv")]) == 0
        assert "DeprecationWarning" not in capsys.readouterr().err, options
    assert main([*base, "--standardize", "zscore", "--out", str(tmp_path / "b.tsv")]) == 0
    err = capsys.readouterr().err
    assert "warning: DeprecationWarning: The default strategy for standardize" in err
    # the Python API keeps nilearn 0.12.1's warning with confounds, as nilearn does
    with pytest.warns(DeprecationWarning, match="The default strategy for standardize"):
        ls.extract_many(
            small_runs[:1],
            seeds_csv[1],
            3.0,
            store=tmp_path / "p.zarr",
            confounds=[confounds_path(small_runs[0])],
            confound_columns=["csf"],
            progress=False,
        )


def test_cli_messages_name_flags():
    from lazyspheres.batch.checks import FILL_NA_ADVICE
    from lazyspheres.cli.messages import to_cli

    assert to_cli(FILL_NA_ADVICE) == (
        "Next: run the same command with --fill-na zero (or mean, interpolate)."
    )
    text = to_cli(
        "x.zarr exists. Pass resume=True to finish it, or overwrite=True to start again."
    )
    assert text == "x.zarr exists. Pass --resume to finish it, or --overwrite to start again."
    hidden = to_cli("cannot write /tmp/lazyspheres-extract-ab12_c/results.zarr/signals/c/0")
    assert hidden == "cannot write (temporary store)"


def test_tables_of_complete_runs_are_written_when_others_fail(
    small_runs, seeds_csv, tmp_path, capsys
):
    broken = tmp_path / "sub-09_task-rest_bold.nii.gz"
    broken.write_bytes(small_runs[0].read_bytes()[:5000])  # header intact, data truncated
    out = tmp_path / "tables" / "{run}.tsv"
    argv = ["extract", str(small_runs[0]), str(broken), "--seeds", str(seeds_csv[0])]
    assert main([*argv, "--radius", "3", "--out", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "  sub-09_task-rest: TruncatedImageError: " in captured.err
    assert captured.err.strip().splitlines()[-1] == (
        "1 of 2 table(s) written. Next: fix the failed runs and run the same command again."
    )
    assert "lazyspheres-extract-" not in captured.err + captured.out
    written = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert written == [small_runs[0].name.split("_space-")[0] + ".tsv"]


def test_files_named_by_flags_are_checked_first(small_runs, seeds_csv, tmp_path, capsys):
    base = ["extract", str(small_runs[0]), "--radius", "3", "--no-progress"]
    seeds = ["--seeds", str(seeds_csv[0])]
    missing = str(tmp_path / "none.nii.gz")
    assert main([*base, *seeds, "--mask", missing, "--out", str(tmp_path / "a.zarr")]) == 2
    assert f"error: --mask {missing}: file not found." in capsys.readouterr().err
    assert main([*base, "--seeds", "nothere.csv", "--out", str(tmp_path / "a.zarr")]) == 2
    assert "--seeds nothere.csv: file not found (or a named seed set" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    out = str(tmp_path / "afile" / "{run}.tsv")
    assert main([*base, *seeds, "--out", out]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "a.zarr").exists()
