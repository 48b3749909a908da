"""The seven FER2013 emotion labels, in the dataset's (and DeepFace's) order."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
