"""Shared helpers for the peer scripts: MNIST IDX loader, noisy data, PSNR, RESULT line.

Only numpy + the standard library. Every peer script imports this, so all
frameworks see byte-identical clean and noisy arrays. MNIST_DIR defaults to the
repository's data/, where ./data-fetch.sh puts the files.
"""
import gzip
import hashlib
import json
import os
import resource
import struct

import numpy as np

MNIST_DIR = os.environ.get(
    "MNIST_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"),
)

# SHA-256 of the decompressed IDX files (shared/mnist/SHA256SUMS.idx).
SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

NOISE_FACTOR = 0.5
NOISE_SEED = 0


def _read_idx(name, check_hash=True):
    with gzip.open(os.path.join(MNIST_DIR, name + ".gz"), "rb") as f:
        raw = f.read()
    if check_hash:
        got = hashlib.sha256(raw).hexdigest()
        if got != SHA256[name]:
            raise ValueError(f"{name}: sha256 {got} != {SHA256[name]}")
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 0x00000803:
        rows, cols = struct.unpack(">II", raw[8:16])
        data = np.frombuffer(raw, dtype=np.uint8, offset=16)
        return data.reshape(count, rows, cols)
    if magic == 0x00000801:
        return np.frombuffer(raw, dtype=np.uint8, offset=8).reshape(count)
    raise ValueError(f"{name}: bad IDX magic {magic:#010x}")


def load_mnist(check_hash=True):
    """Returns (x_train, y_train, x_test, y_test); images uint8 (N, 28, 28), labels uint8 (N,)."""
    x_train = _read_idx("train-images-idx3-ubyte", check_hash)
    y_train = _read_idx("train-labels-idx1-ubyte", check_hash)
    x_test = _read_idx("t10k-images-idx3-ubyte", check_hash)
    y_test = _read_idx("t10k-labels-idx1-ubyte", check_hash)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    return x_train, y_train, x_test, y_test


def _add_noise(x, rng):
    noisy = rng.standard_normal(size=x.shape, dtype=np.float32)
    noisy *= np.float32(NOISE_FACTOR)
    noisy += x
    np.clip(noisy, 0.0, 1.0, out=noisy)
    return noisy


def load_denoising_data():
    """Clean and noisy MNIST, flattened to (N, 784) float32 in [0, 1].

    noisy = clip(x + 0.5 * N(0, 1), 0, 1); the noise is drawn once, up front,
    from numpy's default_rng(0) (train first, then test), in float32.
    Returns x_train, x_train_noisy, x_test, x_test_noisy.
    """
    x_train_u8, _, x_test_u8, _ = load_mnist()
    x_train = x_train_u8.reshape(-1, 784).astype(np.float32)
    x_train /= np.float32(255.0)
    x_test = x_test_u8.reshape(-1, 784).astype(np.float32)
    x_test /= np.float32(255.0)
    del x_train_u8, x_test_u8
    rng = np.random.default_rng(NOISE_SEED)
    x_train_noisy = _add_noise(x_train, rng)
    x_test_noisy = _add_noise(x_test, rng)
    return x_train, x_train_noisy, x_test, x_test_noisy


def psnr_db(a, b):
    """10*log10(1/MSE), MSE = mean over all pixels (accumulated in float64); images in [0, 1]."""
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(d * d))
    return 10.0 * np.log10(1.0 / mse)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_result(framework, version, threads, epoch_s, train_loss, val_loss,
                 psnr_noisy, psnr_denoised, **extra):
    res = {
        "framework": framework,
        "version": version,
        "threads": threads,
        "epochs": len(epoch_s),
        "epoch_s": [round(float(t), 4) for t in epoch_s],
        "train_loss": [round(float(v), 6) for v in train_loss],
        "val_loss": [round(float(v), 6) for v in val_loss],
        "total_train_s": round(float(sum(epoch_s)), 4),
        "psnr_noisy_db": round(float(psnr_noisy), 4),
        "psnr_denoised_db": round(float(psnr_denoised), 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    res.update(extra)
    print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    xtr, xtrn, xte, xten = load_denoising_data()
    print("train", xtr.shape, xtr.dtype, "mean %.4f std %.4f" % (xtr.mean(dtype=np.float64), xtr.std(dtype=np.float64)))
    print("noisy train mean %.4f, noisy test mean %.4f" % (xtrn.mean(dtype=np.float64), xten.mean(dtype=np.float64)))
    print("PSNR noisy test vs clean: %.4f dB" % psnr_db(xten, xte))
    print("peak RSS %.1f MB" % peak_rss_mb())
