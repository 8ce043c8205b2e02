"""TFDS GeneratorBasedBuilders (ArrayRecord, no TensorFlow) for every dataset of the data layer.

Builder names: polymnist_quadrant, polymnist, cub_image_captions, tcga, multimodal_npz.
"""
