"""One module per group of CLI commands. Each exposes ``register(sub, common, reporting)``, which adds
its sub-parsers and returns ``{command name: handler(args, config) -> exit code}``.
"""
