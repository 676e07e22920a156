"""Structure generator: symmetry-conditioned diffusion over free lattice and Wyckoff variables (issue #4)."""
