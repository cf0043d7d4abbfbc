"""The procedural liver phantom: one synthetic patient as multi-phase CT and multi-sequence MRI."""
