"""Models, training, evaluation and one entry point per DVC stage (pipeline.stages)."""
