"""The kernel plan between the derivation and the emitters."""
