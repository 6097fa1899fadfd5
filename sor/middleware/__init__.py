"""The middleware pipeline: the onion, and the exec and persistent modes of a hook."""
