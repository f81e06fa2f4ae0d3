"""The triage HTTP service (Flask). ``create_app`` is the only entry point."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
