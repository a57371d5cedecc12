"""The recipe kit: task-generic training, inference and reporting that every recipe builds on."""
