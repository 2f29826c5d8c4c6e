"""The derivation's stages: lowering, saved values, the backward pass, matrix calculus."""
