"""The Postgres instance profile: a local Postgres started for the tests and the benchmark."""
