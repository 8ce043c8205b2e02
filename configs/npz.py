r"""A user's multimodal data: <data.path>/train.npz, test.npz [, val.npz] (see idmvae_jax.data).

The views' kinds and shapes are inferred from the files; `idmvae_jax.build` picks the networks:
ResNet encoders/decoders for images (model.image.channels = () chooses widths from the image size),
MLPs for vectors, conv text networks for captions. Loss weights: PolyMNIST-Quadrant's (SPEC 6).
Sizes: default, tiny (tests).

Run:
  python -m idmvae_jax.main --config=configs/npz.py --workdir=/tmp/mydata \
      --config.data.path=/path/to/folder_with_npz
"""

from idmvae_jax import config_defaults as common


SIZES = ("default", "tiny")
WEIGHTS = (80.0, 20.0, 1.0)


def get_config(arg=None):
    size, variant = common.parse_arg(arg, SIZES, "default")
    c = common.base_config()
    c.data.name = "npz"
    c.model.image.channels = ()  # () = chosen from the image size by idmvae_jax.build
    c.model.latent.channels = ()
    if size == "default":
        c.model.z_dim, c.model.w_dim = 32, 32
        c.train.batch_size = 128
        c.train.num_steps = 10_000
        c.train.log_every = 100
        c.train.checkpoint_every = 1000
        c.train.sample_every = 1000
    else:
        c.model.z_dim, c.model.w_dim = 4, 4
        c.model.image.channels = (4, 8)
        c.model.vector.hidden = (8,)
        c.model.caption.hidden = (4, 8)
        c.model.caption.embed_dim = 8
        c.model.score_width = c.model.score_time_dim = 16
        c.train.batch_size = 8
        c.train.num_steps = 4
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.sample_every = 2
        c.train.num_sample_examples = 2
        c.train.async_checkpointing = False
        c.data.prefetch = 0
    return common.finalize(c, variant, WEIGHTS)
