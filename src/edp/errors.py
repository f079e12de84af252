"""The configuration error, in a module of its own so that the agent registry (which the run
configuration is built from) can raise it without importing the configuration."""


class ConfigError(ValueError):
    """An impossible or unknown setting; the message is one line naming the value."""
