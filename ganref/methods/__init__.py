"""One file per method family; each imports only the core (``ganref.*``), never another method,
except the declared edge: ``diffusion_gan``, ``ddgan`` and ``distill`` may import ``ddpm``."""
