"""Networks of IDMVAE and the likelihoods of the view kinds; knows nothing of the objective or training."""
from idmvae_jax.models.network import Network

__all__ = ["Network"]
