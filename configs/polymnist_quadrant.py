r"""PolyMNIST-Quadrant (SPEC 4): 5 views of a digit pasted in a random quadrant.

Sizes (argument `SIZE[,VARIANT]`, variants idmvae | diffusion | mmvaeplus | no_crossmi | no_genaug):
  paper  SPEC 6: 64 px, z 32 / w 128, channels (64, 128, 256, 512), beta 2.5, l1/l2/l_diff
         80/20/1.0, Adam 5e-4, batch 128, 100 epochs of 220,000 tuples (171,875 steps). Needs the
         MNIST idx files (data.manual_dir or a one-time download).
  mini   the offline default: the embedded dataset (4,000 digits x 4 repetitions, 32 px) with
         CPU-sized networks (channels (8, 16, 32), z 16 / w 32, batch 32, 1,500 steps of Adam 1e-3),
         the batch-centred cosine critic and l1 = 400 (docs/results_mini.md says why); about 25
         minutes on 2 CPU cores.
  tiny   seconds; for tests.

Run (the README's main command):
  python -m idmvae_jax.main --config=configs/polymnist_quadrant.py:mini --workdir=/tmp/pmq_mini
Paper run, IDMVAE + diffusion prior:
  python -m idmvae_jax.main --config=configs/polymnist_quadrant.py:paper,diffusion \
      --workdir=/tmp/pmq_paper_diffusion --config.data.manual_dir=/path/to/mnist_idx
Tests:
  python -m idmvae_jax.main --config=configs/polymnist_quadrant.py:tiny --workdir=/tmp/pmq_tiny
"""

from idmvae_jax import config_defaults as common


SIZES = ("paper", "mini", "tiny")
WEIGHTS = (80.0, 20.0, 1.0)  # l1, l2, l_diff (SPEC 6)


def get_config(arg=None):
    size, variant = common.parse_arg(arg, SIZES, "paper")
    c = common.base_config()
    c.loss.beta = 2.5
    c.model.posterior = "normal"
    c.model.posterior_eps = 1e-8
    c.train.learning_rate = 5e-4
    weights = WEIGHTS
    if size == "paper":
        c.data.name = "polymnist_quadrant"
        c.data.image_size = 64
        c.data.num_repetitions = 4
        c.model.z_dim, c.model.w_dim = 32, 128
        c.model.image.channels = (64, 128, 256, 512)
        c.train.batch_size = 128
        c.train.num_steps = 100 * 220_000 // 128  # 100 epochs
        c.train.log_every = 100
        c.train.checkpoint_every = 5000
        c.train.sample_every = 5000
    elif size == "mini":
        c.data.name = "polymnist_quadrant_embedded"
        c.data.image_size = 32
        c.data.num_repetitions = 4
        c.model.z_dim, c.model.w_dim = 16, 32
        c.model.image.channels = (8, 16, 32)
        c.model.score_width = c.model.score_time_dim = 128
        c.model.critic_width, c.model.critic_dim = 64, 32
        # with the paper's plain cosine the shared codes of this small model collapse onto one
        # direction (InfoNCE at chance for thousands of steps); the centred cosine does not, and
        # l1 = 5 x 80 lets InfoNCE set the pace against the ELBO: a linear digit probe of mu_z
        # reaches 0.68 in 1,500 steps (0.21 with l1 = 80), examples/shared_code_probe.py
        c.model.critic = "centered"
        weights = (400.0, 20.0, 1.0)
        c.train.learning_rate = 1e-3
        # measured on 2 quiet CPU cores: ~0.93 s/step -> ~23 minutes
        c.train.batch_size = 32
        c.train.num_steps = 1500
        c.train.log_every = 50
        c.train.checkpoint_every = 250
        c.train.sample_every = 500
        c.eval.num_fit = 4000
        # digit classifiers with a stride-1 conv before each strided one: the strided-only default
        # reaches 93.2-96.2 % per view on these 32 px views, this 95.0-97.2 % (about 512 s per
        # view on 2 cores); the quadrant is easy: 300 steps reach 100 %
        c.eval.classifier_convs_per_level = 2
        c.eval.classifier_private_steps = 300
        c.eval.fid_samples = 500
        c.eval.batch_size = 128
        c.diffusion.ddim_steps = 50
    else:  # tiny
        c.data.name = "polymnist_quadrant_embedded"
        c.data.image_size = 32
        c.data.num_repetitions = 1
        c.data.prefetch = 0
        c.model.z_dim, c.model.w_dim = 4, 6
        c.model.image.channels = (4, 8)
        c.model.score_width = c.model.score_time_dim = 16
        c.model.critic_width, c.model.critic_dim = 8, 8
        c.train.batch_size = 16
        c.train.num_steps = 6
        c.train.log_every = 2
        c.train.checkpoint_every = 3
        c.train.sample_every = 3
        c.train.num_sample_examples = 4
        c.train.async_checkpointing = False
        c.train.tensorboard = True
        c.eval.num_fit = 200
        c.eval.fid_samples = 64
        c.eval.classifier_steps = 20
        c.eval.batch_size = 64
        c.diffusion.ddim_steps = 4
        c.diffusion.num_timesteps = 100
    return common.finalize(c, variant, weights)
