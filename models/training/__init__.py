"""Training and prediction: one CPU, one GPU (autocast) or many GPUs (torchrun + DDP)."""
