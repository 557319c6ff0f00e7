"""Plotting helpers shared by chapters."""
