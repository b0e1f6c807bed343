"""Spread Advisor: cited, offline advice on scaling and spreading innovation in the NHS."""

__version__ = "0.1.0"
