"""idmvae_jax: the Information-disentangled Multimodal VAE (IDMVAE) in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="idmvae_jax",
    version="0.1.0",
    description="IDMVAE (ICLR 2026): information-disentangled multimodal VAE in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["idmvae_jax", "idmvae_jax.*"]),
    install_requires=[
        "jax>=0.6.0",
        "flax>=0.10.4",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11.0",
        "tensorflow-datasets>=4.9.7",
        "array_record>=0.5.1",
        "grain>=0.2.15",
        "chex>=0.1.88",
        "ml-collections>=1.0.0",
        "absl-py>=2.1.0",
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "scikit-image>=0.22",
        "mlxtend>=0.23",
        "pillow>=10.0",
        "matplotlib>=3.7",
        "tensorboardX>=2.6",
        "etils[epath]>=1.7",
    ],
    extras_require={
        # Bucket workdirs: gs:// through gcsfs (Orbax's checkpoints need nothing more).
        "gcs": ["gcsfs>=2024.2"],
        # The tests run bucket workdirs against a GCS emulator on localhost.
        "test": ["pytest>=8.0", "pytest-xdist>=3.5", "gcsfs>=2024.2", "gcp-storage-emulator>=2024.8"],
    },
)
