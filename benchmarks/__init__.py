"""Benchmark scripts comparing targets with the full model."""
