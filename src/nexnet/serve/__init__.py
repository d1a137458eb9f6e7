"""``nexnet serve``: one loaded model behind an HTTP API and a local web page (the ``[serve]`` extra).

``runner`` runs the model on one thread and batches requests that arrive together; ``app`` builds the
FastAPI application; ``server`` loads a checkpoint and runs uvicorn. FastAPI is imported only here,
so the rest of nexnet works without the extra.
"""
