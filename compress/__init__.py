"""Full model to edge package: pruning, step distillation, quantization, export, packaging."""
