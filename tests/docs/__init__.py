"""The derivation documents and notebooks: fresh, compiling, every printed equation true."""
