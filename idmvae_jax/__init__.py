"""idmvae_jax: the Information-disentangled Multimodal VAE (IDMVAE) in JAX/Flax.

Layers (imports point downwards only): CLIs (main, evaluate, benchmark; their shared flags in
`flags`) -> evaluation -> training (loop, step, parallel, checkpointing, writers, loss) ->
generation, build, config -> objective (pure loss terms) and models (networks) -> core (latent
distributions, similarity scores). `data/` is independent of the model code.
"""

__version__ = "0.1.0"
