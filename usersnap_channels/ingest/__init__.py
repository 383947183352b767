"""Importing feedback: plan units, fetch and map them in workers, hand rows to the warehouse."""
