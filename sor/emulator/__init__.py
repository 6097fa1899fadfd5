"""The embedded Lambda emulator: the Runtime API for one bootstrap, RIE's invoke endpoint."""
