"""Spot checks on ../shared/data; skipped on clones without it."""

import pandas as pd

from xtalagent.data import build_dataset, load_dataset


def test_perov5_sample_labels(shared_data, tmp_path):
    sample = pd.read_csv(shared_data / "perov_5" / "val.csv.gz", nrows=30)
    src = tmp_path / "perov.csv"
    sample.to_csv(src, index=False)
    report = build_dataset([src], tmp_path / "perov.parquet", workers=1, progress=False)
    frame = load_dataset(tmp_path / "perov.parquet")
    assert report.n_labelled == 30
    assert (frame["natoms"] % 5 == 0).all()
    assert "heat_ref" in frame.columns
