"""The foundations every layer uses: array blocks, content hashes, the disk cache, optional imports,
and TensorFlow's quiet set-up.
"""
