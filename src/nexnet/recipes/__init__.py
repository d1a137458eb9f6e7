"""Recipes built from the verbs: ``reproduce`` (the paper's tables) and ``demo``."""
