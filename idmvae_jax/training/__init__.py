"""Training: the objective composed with the package's networks (`loss`), the step, the loop."""
