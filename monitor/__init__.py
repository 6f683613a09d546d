"""news-monitor: watch news feeds, match rules, fold one story's reports into one alert."""

import sys

__version__ = "0.1.0"

# httpx's __init__ imports its command-line client (``httpx._main``) and with it rich and
# pygments whenever they are installed: ~3 MB of the daemon's memory for a tool we never
# run. ``None`` in ``sys.modules`` makes that one import fail, and httpx then defines a
# stub ``main`` (its own fallback for a missing ``httpx[cli]``). Here because every module
# of the package, and so every import of httpx through it, comes after this one.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
