"""The Keras example "Convolutional autoencoder for image denoising" (keras.io/examples/vision/
autoencoder), its own code in Keras 3 (on its JAX backend, CPU), on the reference experiment's
setup like the other conv scripts: the same noisy arrays (peer_common.py), batch 256 (the example
uses 128), Adam(1e-3, 0.9, 0.999, 1e-7) as the example's default "adam", binary cross-entropy on
the sigmoid's output; Conv2D 3x3 32 relu same, MaxPooling2D 2; Conv2D 3x3 32 relu same,
MaxPooling2D 2; Conv2DTranspose 3x3 stride 2 32 relu same, twice; Conv2D 3x3 1 sigmoid same.

Trained and timed as keras_dense.py trains the notebook's model.

Run:  peers/run.sh keras_conv.py      (environment: peers/setup.sh keras)
"""

import keras_dense
from keras import layers


def conv(inputs):
    """The example's model, its own lines."""
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    return layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)


if __name__ == "__main__":
    keras_dense.main(conv, (28, 28, 1), framework="keras-conv")
