"""One module per command; each exposes ``main(args, env) -> exit status``."""
