"""Training: the Lightning trainer, its callbacks (validation, loss guard, checkpoints), LR and loss-weight
schedules, machine-dependent defaults and the DDP helpers."""
