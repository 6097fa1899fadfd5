"""Building the Lambda layer: its staging tree and its reproducible zip."""
