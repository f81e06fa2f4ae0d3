"""training: turn a help-desk export into a model bundle and an evaluation report.

May import ``triage`` (the library), pandas and MLflow; nothing imports ``training``
except the ``triage`` command. Entry point: :func:`training.pipeline.train`.
"""
