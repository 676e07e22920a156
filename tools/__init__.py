"""Pipeline tools after generation: descriptor pre-relaxation and ML-potential screening (issue #5)."""
