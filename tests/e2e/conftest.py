"""End-to-end tier: the demo pipeline in a subprocess."""
