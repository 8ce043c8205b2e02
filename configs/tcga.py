r"""TCGA multi-omics (SPEC 3/4): 2 real-vector views of 100 dimensions, a binary label.

MLP 100 -> 128 -> 64 -> heads, mirrored decoder, Laplace likelihood with a learned scale. SPEC 6:
z 16 / w 32, beta 2.5, l1/l2/l_diff 10/0.001/0.1, Adam 5e-4, batch 128, 50 epochs. The user's
file is <data.path>/tcga.npz; data.tcga_split picks one of the 5 splits. Sizes: paper, tiny.

Run:
  python -m idmvae_jax.main --config=configs/tcga.py:paper,diffusion --workdir=/tmp/tcga \
      --config.data.path=/folder/with/tcga_npz --config.data.tcga_split=0
"""

from idmvae_jax import config_defaults as common


SIZES = ("paper", "tiny")
WEIGHTS = (10.0, 0.001, 0.1)


def get_config(arg=None):
    size, variant = common.parse_arg(arg, SIZES, "paper")
    c = common.base_config()
    c.data.name = "tcga"
    c.loss.beta = 2.5
    c.model.posterior_eps = 1e-8
    c.model.vector.likelihood_scale = None  # learned
    c.train.learning_rate = 5e-4
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.sample_every = 0  # no images to draw
    if size == "paper":
        c.model.z_dim, c.model.w_dim = 16, 32
        c.model.vector.hidden = (128, 64)
        c.train.batch_size = 128
        c.train.num_steps = 0
        c.train.num_epochs = 50.0
    else:
        c.model.z_dim, c.model.w_dim = 4, 4
        c.model.vector.hidden = (8,)
        c.model.score_width = c.model.score_time_dim = 16
        c.train.batch_size = 16
        c.train.num_steps = 4
        c.train.log_every = 2
        c.train.checkpoint_every = 2
    return common.finalize(c, variant, WEIGHTS)
