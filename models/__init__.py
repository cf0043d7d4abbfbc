"""The full model's world: the liver phantom, datasets, registration and motion compensation,
AP-HiDiff and its baselines, losses and training. Imports torch; may import `edge_runtime`."""
