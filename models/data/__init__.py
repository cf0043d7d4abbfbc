"""Datasets: phantom case folders (and later `hidiff prepare` output) as training examples."""
