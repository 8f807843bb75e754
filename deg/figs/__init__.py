"""Data preparation for the figure notebooks: pure functions from results tables to panel tables.

Notebooks in ``notebooks/`` do the drawing; these modules do the filtering, averaging and
statistics so that they can be unit-tested and reused.
"""
