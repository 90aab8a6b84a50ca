"""The Keras example "Convolutional autoencoder for image denoising" (keras.io/examples/vision/
autoencoder), its own code in Keras 3 (on its JAX backend, CPU), on the reference experiment's
setup like the other conv scripts: the same noisy arrays (peer_common.py), batch 256 (the example
uses 128), Adam(1e-3, 0.9, 0.999, 1e-7) as the example's default "adam", binary cross-entropy on
the sigmoid's output; Conv2D 3x3 32 relu same, MaxPooling2D 2; Conv2D 3x3 32 relu same,
MaxPooling2D 2; Conv2DTranspose 3x3 stride 2 32 relu same, twice; Conv2D 3x3 1 sigmoid same.

The epoch's time is from on_epoch_begin to on_epoch_end, validation included; epoch 1 includes
compiling the train and test steps.

Run:  peers/run.sh keras_conv.py      (environment: peers/setup.sh keras)
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


def main():
    x_train, x_train_noisy, x_test, x_test_noisy = ac.load_denoising_data()
    rss_after_data = ac.peak_rss_mb()
    keras.utils.set_random_seed(0)

    x_train, x_train_noisy, x_test, x_test_noisy = (a.reshape(-1, 28, 28, 1) for a in
                                                    (x_train, x_train_noisy, x_test, x_test_noisy))
    inputs = layers.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    outputs = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    autoencoder = keras.Model(inputs, outputs)
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
        framework="keras",
        version="keras %s / jax %s" % (keras.__version__, jax.__version__),
        threads=THREADS,
        epoch_s=timer.seconds,
        train_loss=history.history["loss"],
        val_loss=history.history["val_loss"],
        psnr_noisy=ac.psnr_db(x_test_noisy, x_test),
        psnr_denoised=ac.psnr_db(decoded, x_test),
        loss_form="keras binary_crossentropy on the sigmoid's output, clipped to [1e-7, 1 - 1e-7]",
        rss_after_data_mb=round(rss_after_data, 1),
    )


if __name__ == "__main__":
    main()
