"""Models built from the cells (layers, heads, losses, optimizers) and weights in and out."""
