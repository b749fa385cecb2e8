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


def unwritable_output_dir(output_dir: str, error: OSError) -> ConfigError:
    return ConfigError(f"output_dir {output_dir} is not writable ({error.strerror or error}); "
                       "set -o output_dir=DIR to a writable directory")
