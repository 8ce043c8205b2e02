"""The bottom layer: array maths that both `models` and `objective` use (latent distributions,
similarity scores). Imports only jax."""
