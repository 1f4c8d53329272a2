"""ganref: tested, minimal, device-agnostic GAN reference implementations, one chapter per method."""

from ganref.report import Report
from ganref.utils import PROFILES, by_profile, device, resolve_profile, seed_everything

__all__ = ["Report", "PROFILES", "by_profile", "device", "resolve_profile", "seed_everything"]
__version__ = "0.1.0"
