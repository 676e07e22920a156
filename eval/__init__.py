"""Evaluation: metrics and benchmarks for each stage."""
