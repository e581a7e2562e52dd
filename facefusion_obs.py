"""FaceFusion Live for OBS Studio: add this file in OBS → Tools → Scripts (the + button).

OBS imports a script by its file stem, and on ``sys.path`` the package folder ``facefusion_obs/``
beside this file wins over this module, so what OBS actually runs is ``facefusion_obs/__init__.py``,
which exposes the script hooks from ``facefusion_obs.obs.script``. This file is the handle you pick
in the dialog; it re-exports the same hooks for any host that loads it by path instead.
Standard library only: OBS's embedded Python has no numpy; the heavy work runs in the worker.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from facefusion_obs.obs.script import *  # noqa: F403
