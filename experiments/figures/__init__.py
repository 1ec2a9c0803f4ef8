"""Figures and tables of the papers, one module each (experiments/figures/context.py holds the
module contract), registered by NAME in report order in `experiments.figures.registry`."""
