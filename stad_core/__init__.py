"""stad core: data formats, video, models, heads, training and evaluation.

Pure torch/numpy/pyav/pyarrow. This package must import without Prefect and without zarr
(``tests/test_layering.py`` enforces it).
"""

__version__ = "0.2.0"
