"""Symmetry-labelled crystal datasets: read sources, label them, write Parquet.

``build_dataset`` is the API behind ``xtalagent data build``; ``load_dataset`` reads the result
back as a DataFrame or as :class:`~xtalagent.records.CrystalRecord` objects.
"""

from xtalagent.data.build import BuildReport, build_dataset
from xtalagent.data.schema import load_dataset, load_records

__all__ = ["BuildReport", "build_dataset", "load_dataset", "load_records"]
