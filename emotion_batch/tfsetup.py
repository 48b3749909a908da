"""TensorFlow process set-up: GPU memory growth when a GPU is visible, thread counts."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def configure_tensorflow(threads: int = 0) -> list[str]:
    """Turn on GPU memory growth and set intra-op threads; return the GPUs TF sees.

    Must run before TensorFlow executes anything in this process.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            logger.warning("GPU %s already initialised; memory growth unchanged", gpu.name)
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            logger.warning("TensorFlow already initialised; thread settings unchanged")
    return [gpu.name for gpu in gpus]
