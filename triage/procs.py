"""Whether a process is alive, for the service's run folders and gunicorn's worker table.

Here, outside the ``service`` package, because ``service/gunicorn_conf.py`` loads
``service/gunicorn_worker.py`` in the gunicorn master by path: importing anything under
``service`` there would import the app and prometheus_client before the metrics folder is set,
and the forked workers would keep their metrics to themselves (no ``/metrics`` lines). The
``triage`` package's ``__init__`` imports nothing.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
