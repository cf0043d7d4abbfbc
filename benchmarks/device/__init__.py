"""`hidiff bench device`: speed, memory and size of model packages measured on this device.

Each configuration (package x provider x precision x grid x batch) is measured in a fresh child
process (`benchmarks.device.worker`) so its peak RSS, load time and first call are its own; the
parent collects one JSON line per child, adds the ratios between packages measured in this same
run, and writes one record validated against `benchmarks/device/schema.json`.
"""
