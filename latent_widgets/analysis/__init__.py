"""The analysis layer: projections, map quality, interpolation, neighbours, attributes, metrics, failures.

numpy, scikit-learn and umap-learn only: no model, no widget.
"""
