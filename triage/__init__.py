"""triage: the library. No Flask, no MLflow (see docs/DESIGN.md for the layering)."""

__version__ = "0.1.0"
