"""WSGI module for gunicorn: ``gunicorn -c service/gunicorn_conf.py service.wsgi:app``.

Building the app here (and not in ``service/__init__``) keeps imports side-effect
free everywhere else; with ``preload_app = False`` each worker imports this
module once, after the fork, and loads its own bundle.
"""

from __future__ import annotations

from service import create_app

app = create_app()
