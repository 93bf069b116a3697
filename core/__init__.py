"""Code shared by the API and the workers: settings, database, task lifecycle, dispatch.

Nothing here imports Flask or loads a model.
"""
