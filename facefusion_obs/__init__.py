"""facefusion-obs: live face swap and green-screen matting as a real OBS Studio filter.

OBS imports a script by its file stem and a package beats a module of the same name on ``sys.path``,
so choosing ``facefusion_obs.py`` in OBS's Scripts window imports *this package*. Inside OBS
(``obspython`` is loaded) the package therefore exposes the script hooks; everywhere else it stays
an ordinary, import-light package.
"""

import sys

__version__ = "0.1.0"

if "obspython" in sys.modules:  # only inside OBS's embedded interpreter
    from facefusion_obs.obs.script import *  # noqa: F403
