"""Figures: each takes a small pandas frame a compute function returned and only draws.

The shared look lives in :mod:`crm_helpers.plots.theme`.
"""
