"""Reproduce the seed study (a multi-kernel CNN on CIFAR-10) from data to PDF report."""

__version__ = "0.1.0"
