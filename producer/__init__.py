"""The producer: `producer submit|status|watch|report|resume|retry-failed|run`."""
