"""emotion-batch's analysis library: settings, errors, messages, image loading, face
detection, emotion classification (with our CNN's serving runtime) and the in-process
analysis pipeline.

Shared by the worker, the producer and training (`models/`); it imports none of them. Library code never
configures logging: it only creates module loggers.
"""

__version__ = "0.1.0"
