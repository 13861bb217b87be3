"""Build ``lazyspheres/data/*.csv`` (the named seed sets) from their published tables.

Run once, by hand, with nilearn installed (nilearn ships copies of the published tables; it
is used here only as a convenient source of the files, never by lazyspheres at run time)::

    python tools/make_seed_tables.py

Sources (published facts; see ``lazyspheres/data/README.md`` for the full citations):

* Power et al. (2011), Neuron 72(4):665-678: 264 ROI centres (MNI, mm). The consensus network
  assignment ("master assignment" of the supplementary table ``Neuron_consensus_264``) is
  encoded below as runs of ROI numbers; the script checks the published network sizes.
* Dosenbach et al. (2010), Science 329(5997):1358-1361: 160 ROI centres, region names and the
  six networks.
* Seitzman et al. (2020), NeuroImage 206:116290: 300 ROI centres, per-ROI radius, network and
  anatomical class (distributed by the authors as ``seitzman_2018_*``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SOURCE = Path(__import__("nilearn").__file__).parent / "datasets" / "data"
TARGET = Path(__file__).resolve().parents[1] / "lazyspheres" / "data"

POWER_NETWORKS = {
    -1: "Uncertain",
    1: "Sensory/somatomotor Hand",
    2: "Sensory/somatomotor Mouth",
    3: "Cingulo-opercular Task Control",
    4: "Auditory",
    5: "Default mode",
    6: "Memory retrieval?",
    7: "Visual",
    8: "Fronto-parietal Task Control",
    9: "Salience",
    10: "Subcortical",
    11: "Ventral attention",
    12: "Dorsal attention",
    13: "Cerebellar",
}
# (first ROI, last ROI, network id) of Power et al.'s consensus assignment, ROI numbers 1..264.
POWER_RUNS = [
    (1, 12, -1), (13, 41, 1), (42, 46, 2), (47, 60, 3), (61, 73, 4), (74, 83, 5),
    (84, 85, -1), (86, 131, 5), (132, 132, -1), (133, 136, 6), (137, 137, 5),
    (138, 138, 11), (139, 139, 5), (140, 142, -1), (143, 173, 7), (174, 181, 8),
    (182, 185, -1), (186, 202, 8), (203, 220, 9), (221, 221, 6), (222, 234, 10),
    (235, 242, 11), (243, 246, 13), (247, 250, -1), (251, 252, 12), (253, 254, -1),
    (255, 255, 1), (256, 264, 12),
]  # fmt: skip
# Network sizes reported by Power et al. (2011).
POWER_SIZES = {
    -1: 28, 1: 30, 2: 5, 3: 14, 4: 13, 5: 58, 6: 5, 7: 31, 8: 25, 9: 18, 10: 13, 11: 9,
    12: 11, 13: 4,
}  # fmt: skip


def power() -> pd.DataFrame:
    """Power 264 with consensus networks."""
    raw = pd.read_csv(SOURCE / "power_2011.csv")
    ids = np.concatenate([np.full(last - first + 1, net) for first, last, net in POWER_RUNS])
    assert len(ids) == 264
    sizes = dict(zip(*np.unique(ids, return_counts=True), strict=True))
    assert sizes == POWER_SIZES, sizes
    assert (raw["ROI"].to_numpy() == np.arange(1, 265)).all()
    return pd.DataFrame(
        {
            "roi": raw["ROI"],
            "x": raw["X"],
            "y": raw["Y"],
            "z": raw["Z"],
            "network_id": ids,
            "network": [POWER_NETWORKS[i] for i in ids],
        }
    )


def dosenbach() -> pd.DataFrame:
    """Dosenbach 160 in ROI-number order."""
    raw = pd.read_csv(SOURCE / "dosenbach_2010.csv")
    assert (raw["number"].to_numpy() == np.arange(1, 161)).all()
    return pd.DataFrame(
        {
            "roi": raw["number"],
            "x": raw["x"],
            "y": raw["y"],
            "z": raw["z"],
            "region": raw["name"],
            # region names repeat; the ROI number makes each label unique
            "label": [f"{n} {i}" for n, i in zip(raw["name"], raw["number"], strict=True)],
            "network": raw["network"],
        }
    )


def seitzman() -> pd.DataFrame:
    """Seitzman 300 with networks and anatomical classes."""
    raw = pd.read_csv(SOURCE / "seitzman_2018_ROIs_300inVol_MNI_allInfo.txt", sep=" ")
    anat_file = SOURCE / "seitzman_2018_ROIs_anatomicalLabels.txt"
    header, *codes = anat_file.read_text().split()
    classes = dict(item.split("=") for item in header.split(","))
    assert len(codes) == len(raw) == 300
    return pd.DataFrame(
        {
            "roi": np.arange(1, 301),
            "x": raw["x"],
            "y": raw["y"],
            "z": raw["z"],
            "radius_mm": raw["radius(mm)"],
            "network_id": raw["netWorkbenchLabel"],
            "network": raw["netName"],
            "region": [classes[c] for c in codes],
        }
    )


def main() -> None:
    """Write the three CSV files."""
    for name, frame in [
        ("power2011", power()),
        ("dosenbach2010", dosenbach()),
        ("seitzman2018", seitzman()),
    ]:
        path = TARGET / f"{name}.csv"
        frame.to_csv(path, index=False)
        back = pd.read_csv(path)
        for axis in "xyz":  # float text must round-trip exactly
            assert np.array_equal(back[axis].to_numpy(float), frame[axis].to_numpy(float))
        print(f"wrote {path} ({len(frame)} rows)")


if __name__ == "__main__":
    main()
