"""Training, evaluation, checkpoints, meters and run logs."""
