"""Preprocessing: CT-MRI registration, respiratory-motion modelling, augmentation, `hidiff prepare`.

CT and MRI of one patient are taken at different breathing depths; a CT->MRI model trained on
misaligned pairs learns to blur and to move vessels. This package aligns the MR to the CT grid
(the model's input grid), measures how well in millimetres, and writes normalised training pairs.
"""
