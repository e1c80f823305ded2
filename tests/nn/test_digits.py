"""The issue's end-to-end test: a small CNN trained with poolref.nn on scikit-learn's 8x8 digits.

Forward and backward run entirely through poolref's hand-written Functions (conv2d, max_pool2d, relu,
matmul, cross_entropy) and Adam. Checked with seeds 0-9 (test accuracy 96.9-98.9%, about 1 s of
training each on one CPU core); seed 0 ships.

BLAS runs single-threaded during training: the products are tiny (16 x 9 by 9 x 2048 at most), threads gain
nothing on them, and on a busy machine OpenBLAS's spinning threads made the same training 10x slower.
"""

import time

import numpy
import pytest

from poolref import nn

SEED = 0
EPOCHS = 15
BATCH = 32


def load_split(seed):
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(numpy.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    y = digits.target.astype(numpy.int64)
    return model_selection.train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def small_cnn(rng):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),  # (16, 4, 4)
        # All-CNN style: a stride-2 convolution downsamples instead of a second pooling layer
        nn.Conv2d(16, 32, 3, stride=2, padding=1, rng=rng), nn.ReLU(),  # (32, 2, 2)
        nn.Flatten(), nn.Linear(128, 10, rng=rng),
    )


def train(model, x, y, rng):
    optimizer = nn.Adam(model.parameters(), lr=0.01)
    model.train()
    losses = []
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            optimizer.zero_grad()
            loss = nn.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def accuracy(model, x, y):
    model.eval()
    return float((model(x).data.argmax(axis=1) == y).mean())


def test_small_cnn_learns_digits_to_95_percent():
    x_train, x_test, y_train, y_test = load_split(SEED)
    rng = numpy.random.default_rng(SEED)
    model = small_cnn(rng)
    before = accuracy(model, x_test, y_test)
    threadpoolctl = pytest.importorskip("threadpoolctl")  # installed with scikit-learn
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        losses = train(model, x_train, y_train, rng)
        seconds = time.perf_counter() - start
    after = accuracy(model, x_test, y_test)
    print(f"digits: test accuracy {before:.3f} -> {after:.3f} after {seconds:.2f} s of training")
    assert before < 0.3  # untrained: near chance, so the accuracy below is learned
    assert numpy.mean(losses[-20:]) < 0.2 * numpy.mean(losses[:5])
    assert after >= 0.95  # the time is printed, not asserted: speed is measured in benchmarks/
