"""Our FER2013 emotion CNN: a small residual network sized for a 2-core CPU.

Input: (48, 48, 1) raw grey levels 0-255 (float32; uint8 batches are cast by the caller
or by `emotion_batch.runtime`). Scaling to [0, 1] happens inside the model. Output: softmax
probabilities in float32, even under a mixed-precision policy.

Design (accuracy per FLOP on CPU): full 3x3 convolutions where the feature map is small
enough for them to be cheap, early stride-2 downsampling to keep serving above
2,000 faces/s, residual blocks with batch norm, global average pooling and dropout
instead of large dense layers.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from emotion_batch.layers import AverageViews, CropViews, MirrorFaces

INPUT_SHAPE = (48, 48, 1)


def conv_bn(x: keras.KerasTensor, filters: int, stride: int = 1, name: str = "") -> keras.KerasTensor:
    """3x3 convolution (no bias), batch norm, ReLU."""
    x = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def res_block(x: keras.KerasTensor, filters: int, stride: int, name: str) -> keras.KerasTensor:
    """Basic residual block (two 3x3 convs) with a 1x1 projection when the shape changes."""
    shortcut = x
    y = conv_bn(x, filters, stride, name=f"{name}_a")
    y = layers.Conv2D(
        filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_b_conv"
    )(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def build_model(
    n_classes: int = 7,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    blocks: tuple[int, ...] = (1, 1, 1),
    dropout: float = 0.4,
    name: str = "emotion_cnn",
) -> keras.Model:
    """Stem (48x48 -> 24x24), then one stage per width after the first, each halving size.

    widths[0] is the stem width; widths[i+1] the stage width, with blocks[i] residual blocks.
    """
    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32", name="face")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = conv_bn(x, widths[0] // 2, name="stem1")
    x = conv_bn(x, widths[0], stride=2, name="stem2")
    for stage, (filters, n_blocks) in enumerate(zip(widths[1:], blocks)):
        for b in range(n_blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            x = res_block(x, filters, stride, name=f"s{stage}b{b}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(n_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def build_ensemble(members: list[keras.Model], mirrored: list[bool], name: str = "emotion_cnn_ensemble") -> keras.Model:
    """One model averaging the probabilities of `members` (each a face -> probabilities
    model with its own name), member i reading the mirror image when mirrored[i]."""
    if len(members) != len(mirrored) or not members:
        raise ValueError("one mirrored flag per member, at least one member")
    if len({m.name for m in members}) != len(members):
        raise ValueError("ensemble members need distinct names")
    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32", name="face")
    mirror = MirrorFaces(name="mirror")(inputs) if any(mirrored) else None
    outputs = [member(mirror if flip else inputs) for member, flip in zip(members, mirrored)]
    probs = outputs[0] if len(outputs) == 1 else layers.Average(dtype="float32", name="probs")(outputs)
    return keras.Model(inputs, probs, name=name)


def build_vgg(
    n_classes: int = 7,
    widths: tuple[int, ...] = (64, 128, 256, 512),
    crop: int = 40,
    dense: tuple[int, ...] = (1024, 1024),
    dropout: float = 0.2,
    name: str = "emotion_vgg",
) -> keras.Model:
    """Khaireddin & Chen's VGG for FER2013: per width a stage of two 3x3 convolutions with
    batch norm and a 2x2 max-pool, then dense layers with dropout, on `crop`-pixel views of
    the 48x48 face (`CropViews`; ten views averaged at inference). Input and output are the
    project's usual ones: (48, 48, 1) grey 0-255 in, softmax probabilities in float32 out.
    """
    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32", name="face")
    x = CropViews(crop, name="views")(inputs) if crop < INPUT_SHAPE[0] else inputs
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    for stage, filters in enumerate(widths):
        x = conv_bn(x, filters, name=f"s{stage}a")
        x = conv_bn(x, filters, name=f"s{stage}b")
        x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    x = layers.Dense(n_classes, name="logits")(x)
    probs = layers.Activation("softmax", dtype="float32", name="view_probs")(x)
    if crop < INPUT_SHAPE[0]:
        probs = AverageViews(dtype="float32", name="probs")(probs, inputs)
    return keras.Model(inputs, probs, name=name)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers only)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # an ensemble's member
            total += count_macs(layer)
            continue
        if isinstance(layer, (layers.Conv2D, layers.Dense)):
            kernel = layer.kernel.shape
            out = layer.output.shape
            spatial = out[1] * out[2] if len(out) == 4 else 1
            total += int(spatial * int(np.prod(kernel)))
    return total
