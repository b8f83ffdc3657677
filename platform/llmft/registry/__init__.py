"""Model registry on MLflow: immutable, hash-verified versions with lineage, semantic versions,
audited aliases (candidate / staging / production), lifecycle and export.

Ray-free: everything here runs in the CLI, the control plane or a test without a cluster.
"""

from llmft.registry.registry import ALIASES, GATED, ModelRegistry
from llmft.registry.semver import SemVer, classify_change, next_semver

__all__ = ["ALIASES", "GATED", "ModelRegistry", "SemVer", "classify_change", "next_semver"]
