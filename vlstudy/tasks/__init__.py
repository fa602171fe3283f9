"""The task layer: one module per training or evaluation task, each ``run(config, paths) -> TaskResult``."""
