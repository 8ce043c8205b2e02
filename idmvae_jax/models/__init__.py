"""Networks and distributions of IDMVAE; knows nothing of losses or training."""
from idmvae_jax.models.network import Network

__all__ = ["Network"]
