"""Inference engines and hardware target profiles. Imports no torch."""
