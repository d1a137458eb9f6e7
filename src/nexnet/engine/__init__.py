"""Training, evaluation, prediction and scoring."""
