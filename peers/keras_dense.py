"""The reference notebook's denoising autoencoder, in Keras 3 (on its JAX backend, CPU).

The notebook's code as it stands: a Sequential-style functional model
784-128-64-32-64-128-784, relu hidden layers, sigmoid output, Keras's default
Glorot-uniform weights and zero biases; compile(Adam(1e-3, 0.9, 0.999, 1e-7),
"binary_crossentropy") on the sigmoid's output (Keras clips it to [1e-7, 1 - 1e-7]
and takes the logs, where the other scripts and ours use the logits); fit with
batch 256, shuffle=True, validation_data = the noisy test set against the clean
one; 10 epochs. Only the data differs from the notebook: the same noisy arrays as
every peer script (peer_common.py), so that the losses compare.

The epoch's time is from on_epoch_begin to on_epoch_end, validation included;
epoch 1 includes compiling the train and test steps.

Run:  peers/run.sh keras_dense.py      (environment: peers/setup.sh keras)
"""
import os

THREADS = int(os.environ.get("PEER_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import time

import jax
import keras
from keras import layers

import peer_common as ac

EPOCHS = int(os.environ.get("PEER_EPOCHS", "10"))


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def dense(inputs):
    """The notebook's model: 784-128-64-32-64-128-784, relu inside, sigmoid out."""
    x = inputs
    for width in (128, 64, 32, 64, 128):
        x = layers.Dense(width, activation="relu")(x)
    return layers.Dense(784, activation="sigmoid")(x)


def main(model=dense, shape=(784,), framework="keras"):
    """Trains `model` (a function from the input to the output layer) on images of `shape`, as
    the notebook does, and prints the RESULT line."""
    x_train, x_train_noisy, x_test, x_test_noisy = (
        a.reshape((-1,) + shape) for a in ac.load_denoising_data())
    rss_after_data = ac.peak_rss_mb()
    keras.utils.set_random_seed(0)

    inputs = keras.Input(shape=shape)
    autoencoder = keras.Model(inputs, model(inputs))
    optimizer = keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    autoencoder.compile(optimizer=optimizer, loss="binary_crossentropy")

    timer = EpochTimer()
    history = autoencoder.fit(
        x_train_noisy,
        x_train,
        epochs=EPOCHS,
        batch_size=256,
        shuffle=True,
        validation_data=(x_test_noisy, x_test),
        callbacks=[timer],
        verbose=2,
    )
    decoded = autoencoder.predict(x_test_noisy, batch_size=256, verbose=0)

    ac.print_result(
        framework=framework,
        version="keras %s / jax %s" % (keras.__version__, jax.__version__),
        threads=THREADS,
        epoch_s=timer.seconds,
        train_loss=history.history["loss"],
        val_loss=history.history["val_loss"],
        psnr_noisy=ac.psnr_db(x_test_noisy, x_test),
        psnr_denoised=ac.psnr_db(decoded, x_test),
        loss_form="keras binary_crossentropy on the sigmoid's output, clipped to [1e-7, 1 - 1e-7]",
        rss_after_data_mb=round(rss_after_data, 1),
        params=autoencoder.count_params(),
    )


if __name__ == "__main__":
    main()
