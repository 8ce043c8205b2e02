"""The IDMVAE objective as pure functions of arrays and apply callables (SPEC 2).

    total = L_elbo + l1 L_crossMI + l2 L_genaug + l_diff L_diff

Conventions (the reference code's, which the published weights assume):
- L_elbo: batch mean, mean over source views, K-sample "looser" IWAE bound (`elbo`).
- L_crossMI = (1/(M-1)) sum over ordered pairs i != j of -Contrast(mu_z_i, mu_z_j) (`infonce`),
  i.e. M times the paper's pair average.
- L_genaug = sum over views of 0.5 (loss_z + loss_w) (`genaug`), the paper's 1/(2M) sum times 2M.
- L_diff = (1/M) sum_m [D_z(mu_z_m) + D_w_m(mu_w_m)] (`diffusion`, with the schedule and DDIM).

No module here imports a model: every network enters as a callable, so a fork can lift out one
term. `idmvae_jax.training.loss.loss_fn` composes them with the package's networks.
"""
from idmvae_jax.objective.diffusion import diffusion_prior_loss, sample_latent_priors
from idmvae_jax.objective.elbo import ElboTerms, elbo_log_weights, elbo_terms, iwae_looser_loss
from idmvae_jax.objective.genaug import genaug_loss, posterior_samples, swapped_codes
from idmvae_jax.objective.global_batch import GlobalBatch, roll_batch
from idmvae_jax.objective.infonce import (contrast_from_scores, cross_view_infonce_chance, cross_view_infonce_loss,
                                          infonce, per_view_contrast)
from idmvae_jax.objective.noise import Draw, draw_example_noise

__all__ = [
    "Draw", "ElboTerms", "GlobalBatch", "contrast_from_scores", "cross_view_infonce_chance",
    "cross_view_infonce_loss", "diffusion_prior_loss", "draw_example_noise", "elbo_log_weights", "elbo_terms",
    "genaug_loss", "infonce", "iwae_looser_loss", "per_view_contrast", "posterior_samples", "roll_batch",
    "sample_latent_priors", "swapped_codes",
]
