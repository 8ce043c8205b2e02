r"""Original PolyMNIST (Sutter et al. 2021): 5 views, 28x28 RGB digits on textured backgrounds.

Sizes: paper (z 32 / w 32, channels (64, 128, 256), 50 epochs of 60,000 tuples; loss weights of
PolyMNIST-Quadrant, SPEC 6, since the paper publishes none for this dataset), tiny (tests).
Variants: idmvae | diffusion | mmvaeplus | no_crossmi | no_genaug.

Run:
  python -m idmvae_jax.main --config=configs/polymnist.py:paper --workdir=/tmp/polymnist \
      --config.data.manual_dir=/folder/with/PolyMNIST.zip
"""

from idmvae_jax import config_defaults as common


SIZES = ("paper", "tiny")
WEIGHTS = (80.0, 20.0, 1.0)


def get_config(arg=None):
    size, variant = common.parse_arg(arg, SIZES, "paper")
    c = common.base_config()
    c.data.name = "polymnist"
    c.loss.beta = 2.5
    if size == "paper":
        c.model.z_dim, c.model.w_dim = 32, 32
        c.model.image.channels = (64, 128, 256)  # 28 -> 14 -> 7
        c.train.batch_size = 128
        c.train.num_steps = 50 * 60_000 // 128
    else:
        c.model.z_dim, c.model.w_dim = 4, 4
        c.model.image.channels = (4, 8)
        c.model.score_width = c.model.score_time_dim = 16
        c.train.batch_size = 16
        c.train.num_steps = 4
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.sample_every = 0
    return common.finalize(c, variant, WEIGHTS)
