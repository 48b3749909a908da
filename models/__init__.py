"""Emotion models: the shared face preprocessing, our FER2013 CNN, its training and evaluation.

This package knows nothing of Celery or SQL. Importing it is cheap: TensorFlow is imported
only by the modules that need it (architecture, data, train, evaluate).
"""

from models.labels import EMOTIONS
from models.preprocess import FACE_SIZE, preprocess_face, preprocess_faces

__all__ = ["EMOTIONS", "FACE_SIZE", "preprocess_face", "preprocess_faces"]
