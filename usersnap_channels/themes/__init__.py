"""Themes and trends over a channel's data points (offline embeddings, discovery, stable ids)."""
