"""Constraint generator: language models + LoRA that turn composition and targets into symmetry (issue #3)."""
