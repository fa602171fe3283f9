"""The training layer: the one trainer every task uses, its optimiser and schedule, checkpoints and logs."""
