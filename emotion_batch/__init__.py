"""emotion-batch core library: settings, errors, messages, image loading, face detection,
emotion classification and the in-process analysis pipeline.

Shared by the worker and the producer; it imports neither. Library code never
configures logging: it only creates module loggers.
"""

__version__ = "0.1.0"
