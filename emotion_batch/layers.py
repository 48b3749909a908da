"""The Keras layers our served models are saved with (registered, so loading a .keras
file finds them): training builds with them, `emotion_batch.runtime` loads them."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="emotion_batch")
class MirrorFaces(layers.Layer):
    """Faces mirrored left to right, inside the graph: an ensemble member that reads the
    mirror image adds flip averaging to the ensemble at no extra cost (models.ensemble)."""

    def call(self, x: keras.KerasTensor) -> keras.KerasTensor:
        return keras.ops.flip(x, axis=2)


@keras.saving.register_keras_serializable(package="emotion_batch")
class CropViews(layers.Layer):
    """48x48 faces -> 40x40 views (Khaireddin & Chen's crop recipe), inside the graph.

    Training: one random `size` crop per face (the data pipeline has already zoomed,
    rotated, flipped and erased the whole face). Inference: ten views per face, the four
    corners and the centre and their mirror images, stacked face-major as (N * 10, size,
    size, 1); `AverageViews` folds them back. The net is trained on crops, so reading the
    average of ten is its served configuration, not an optional extra.
    """

    def __init__(self, size: int = 40, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.size = size

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None, self.size, self.size, input_shape[-1])

    def call(self, x: keras.KerasTensor, training: bool | None = None) -> keras.KerasTensor:
        import tensorflow as tf

        side = x.shape[1]
        margin = side - self.size
        if training:
            n = tf.shape(x)[0]
            offsets = tf.random.uniform((n, 2), 0, margin + 1, dtype=tf.int32)
            rows = offsets[:, :1] + tf.range(self.size)[None, :]
            cols = offsets[:, 1:] + tf.range(self.size)[None, :]
            x = tf.gather(x, rows, axis=1, batch_dims=1)
            return tf.gather(x, cols, axis=2, batch_dims=1)
        half = margin // 2
        corners = [(0, 0), (0, margin), (margin, 0), (margin, margin), (half, half)]
        views = [x[:, r : r + self.size, c : c + self.size, :] for r, c in corners]
        views += [tf.reverse(v, axis=[2]) for v in views]
        return tf.reshape(tf.stack(views, axis=1), (-1, self.size, self.size, x.shape[-1]))


@keras.saving.register_keras_serializable(package="emotion_batch")
class AverageViews(layers.Layer):
    """(N * V, classes) view probabilities -> (N, classes), V = views per face (1 or 10)."""

    def call(self, probs: keras.KerasTensor, faces: keras.KerasTensor) -> keras.KerasTensor:
        import tensorflow as tf

        n = tf.shape(faces)[0]
        return tf.reduce_mean(tf.reshape(probs, (n, -1, probs.shape[-1])), axis=1)

    def compute_output_shape(self, probs_shape: tuple, faces_shape: tuple) -> tuple:
        return (faces_shape[0], probs_shape[-1])
