"""ganref: tested, minimal, device-agnostic GAN reference implementations, one chapter per method.

The core is this flat package (utils, data, datasets, polygons, nets, layers, losses, train, metrics,
modes, features, probes, viz); methods live in ``ganref.methods`` (one file per family) and the
tooling in ``ganref.pipeline`` (report, runner, cli, site).
"""

from ganref.pipeline.chapter import Chapter, setup
from ganref.pipeline.report import Report
from ganref.utils import PROFILES, by_profile, device, resolve_profile, seed_everything

__all__ = ["Chapter", "Report", "PROFILES", "by_profile", "device", "resolve_profile", "seed_everything", "setup"]
__version__ = "0.1.0"
