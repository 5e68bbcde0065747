"""stad application layer: Prefect flows and tasks, and the ``stad`` command line.

Modules here stay thin: each task calls one ``stad_core``/``storage`` function. Prefect is imported
lazily where it is needed so that ``stad --help`` and the data commands start fast.
"""
