"""Slurm: the pure vocabulary (builders, parsers, states), the only client that
runs Slurm's commands, the batch executor and the service lifecycle.
"""
