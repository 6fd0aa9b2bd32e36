"""Evolve DeepEvolve's convolutional space, extended (``CNN_SPACE``), on real MNIST.

The same job as ``benchmarks/hparams_mnist.py`` (the library's
:func:`deapnn.jobs.hparams.run_hparams`, as ``deapnn hparams --space cnn``) with the CNN space:
conv blocks, convolutions per block, filters, kernel size, pooling, batch normalisation, block
and head dropout, dense head, optimizer, learning rate and batch size. By default each
generation is evaluated by multi-fidelity successive halving (``--fidelity 0.25,1 --promote
0.34``: every new genome trains a quarter epoch, the best third continues to one epoch from its
saved weights); ``--fidelity`` with one run per setting compares. The fittest genome is then
trained by ``train_best`` (early stopping on the validation accuracy), scored on the 10000 test
images and saved (``best.keras``, ``best.json`` in the run folder).

To reproduce (the target is >= 99.3% test accuracy within 2 hours on 2 cores):
``python benchmarks/cnn_mnist.py --population 16 --ngen 8 --seed 0 --fidelity 0.25,1
--promote 0.34 --max-training-time 240 --best-epochs 30 --best-time 2400``.
A tiny try: ``python benchmarks/cnn_mnist.py --population 2 --ngen 1 --fidelity 0.02,0.05
--best-epochs 1 --best-time 30 --run-dir /tmp/cnn_run --out /tmp/cnn.json``.
"""

from __future__ import annotations

from hparams_mnist import RESULTS, main, make_parser

if __name__ == "__main__":
    main(make_parser(__doc__, space="cnn", fidelity=(0.25, 1.0), promote=0.34,
                     max_training_time=240.0, best_epochs=30, patience=5, best_time=2400.0,
                     run_dir=RESULTS / "cnn_mnist_run", out=RESULTS / "cnn_mnist.json"),
         title="MNIST CNN")
