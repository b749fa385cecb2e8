"""Errors a user can fix. The command-line tools print them as one line and exit."""


class UserError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""

    exit_code = 1


class ConfigError(UserError):
    """Bad config file, key, value or command-line usage."""

    exit_code = 2


class DataError(UserError):
    """The dataset archive is missing, unreadable or cannot be downloaded."""


class CheckpointError(UserError):
    """A checkpoint is missing, damaged, or does not fit the model."""


class ModelArgumentError(ValueError):
    """A model name or architecture argument the zoo cannot build (a user's choice, which
    tools report as a usage error; any other ValueError is a bug and keeps its traceback).
    It lives here, not in models/, so that the tools can catch it without importing
    Paddle: a mistyped config key is reported before the framework loads."""


def unwritable_output_dir(output_dir: str, error: OSError) -> ConfigError:
    return ConfigError(f"output_dir {output_dir} is not writable ({error.strerror or error}); "
                       "set -o output_dir=DIR to a writable directory")
