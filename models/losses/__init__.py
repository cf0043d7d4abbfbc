"""Losses of AP-HiDiff: the vessel-mask anatomical loss, lesion CE, wavelet texture loss."""
