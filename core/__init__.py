"""xtalagent: from a design request to screened crystal structures with exact symmetry.

The package root holds what every stage shares: the JSON-serialisable records that cross stage
boundaries (:mod:`xtalagent.records`), symmetry bookkeeping (:mod:`xtalagent.symmetry`),
composition parsing (:mod:`xtalagent.composition`), the one place defaults are named
(:mod:`xtalagent.config`), the dataset pipeline (:mod:`xtalagent.data`) and the CLI.
"""

from xtalagent.errors import XtalAgentError
from xtalagent.records import ConditioningProperties, CrystalRecord, SiteSpec, SymmetryConstraint, WyckoffSite

__version__ = "0.1.0"

__all__ = [
    "ConditioningProperties",
    "CrystalRecord",
    "SiteSpec",
    "SymmetryConstraint",
    "WyckoffSite",
    "XtalAgentError",
    "__version__",
]
