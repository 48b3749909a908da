"""Training and evaluation of our FER2013 emotion CNN (serving lives in emotion_batch).

This package knows nothing of Celery or SQL, and nothing outside it imports it. Importing
it is cheap: TensorFlow is imported only by the modules that need it (architecture, data,
train, evaluate).
"""
