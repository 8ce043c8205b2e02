r"""CUB image-captions (CUBICC grouping, SPEC 3/4): an image view and a caption view.

Images are frozen Stable-Diffusion-VAE latents (32x32x4, kind 'latent') when
data.cub_latents_file is set, else images of data.image_size pixels (kind 'image'). Captions: 32
tokens, a conv text encoder/decoder, Categorical likelihood with weight 5.0; latent likelihood
weight 1/128. SPEC 6: z 256 / w 256, beta 1.0, l1/l2/l_diff 40/10/0.1, Adam 1e-3 amsgrad, batch
256, 50 epochs, posterior eps 1e-6. Sizes: paper, tiny (tests). Needs the manual CUB files.

Run:
  python -m idmvae_jax.main --config=configs/cub.py:paper --workdir=/tmp/cub \
      --config.data.manual_dir=/path/to/cub --config.data.cub_latents_file=sd_latents.npz
"""

from idmvae_jax import config_defaults as common


SIZES = ("paper", "tiny")
WEIGHTS = (40.0, 10.0, 0.1)


def get_config(arg=None):
    size, variant = common.parse_arg(arg, SIZES, "paper")
    c = common.base_config()
    c.data.name = "cub"
    c.data.image_size = 64
    c.loss.beta = 1.0
    c.model.posterior_eps = 1e-6
    c.model.latent.likelihood_scale = 0.01
    c.model.latent.llik_scaling = 1.0 / 128.0
    c.model.caption.llik_scaling = 5.0
    c.train.learning_rate = 1e-3
    c.train.amsgrad = True
    if size == "paper":
        c.model.z_dim, c.model.w_dim = 256, 256
        c.model.latent.channels = (64, 128, 256, 512, 1024)  # 32 -> 2
        c.model.image.channels = (64, 128, 256, 512, 1024)
        c.model.caption.hidden = (32, 64, 128)
        c.model.caption.embed_dim = 128
        c.train.batch_size = 256
        c.train.num_steps = 0
        c.train.num_epochs = 50.0
    else:
        c.data.image_size = 32
        c.model.z_dim, c.model.w_dim = 4, 4
        c.model.latent.channels = (4, 8)
        c.model.image.channels = (4, 8)
        c.model.caption.hidden = (4, 8)
        c.model.caption.embed_dim = 8
        c.model.score_width = c.model.score_time_dim = 16
        c.train.batch_size = 16
        c.train.num_steps = 4
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.sample_every = 0
    return common.finalize(c, variant, WEIGHTS)
