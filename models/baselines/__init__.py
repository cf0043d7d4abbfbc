"""Baselines in AP-HiDiff's framework and data path: a plain conditional DDPM and pix2pix."""
