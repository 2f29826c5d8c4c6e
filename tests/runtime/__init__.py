"""The hand-written C runtime on its own: products, activations, amalgamation, names."""
