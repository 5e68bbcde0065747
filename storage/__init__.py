"""stad storage: zarr feature banks, parquet tables, checkpoints and workspace URIs.

May import ``stad_core`` (types only) but never Prefect.
"""
