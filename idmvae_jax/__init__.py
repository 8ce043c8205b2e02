"""idmvae_jax: the Information-disentangled Multimodal VAE (IDMVAE) in JAX/Flax.

Layers (imports point downwards only): CLIs (main, evaluate, benchmark; their shared flags in
`flags`) -> train, evaluation -> train_step / parallel / checkpointing / writers -> losses /
diffusion / generation -> models (networks and distributions). `data/` is independent of the model
code.
"""

__version__ = "0.1.0"
