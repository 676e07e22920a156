"""xtalagent: from a design request to screened crystal structures with exact symmetry.

The package root holds what every stage shares: the JSON-serialisable records that cross stage
boundaries (:mod:`xtalagent.records`), symmetry bookkeeping (:mod:`xtalagent.symmetry`),
composition parsing (:mod:`xtalagent.composition`), the settings every stage shares
(:mod:`xtalagent.config`), the dataset pipeline (:mod:`xtalagent.data`), user errors and optional
dependencies (:mod:`xtalagent.errors`, :mod:`xtalagent.optional`). It imports nothing above it: the
CLI is :mod:`xtalagent.agent.cli`. ``__version__`` here is the package's one version number
(``pyproject.toml`` reads it).
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
