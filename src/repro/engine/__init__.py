"""The engine: data, model, training, timing and the GPU command; the only layer that
imports torch."""
