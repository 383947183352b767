"""Dagster definitions: resources, jobs, and per-domain assets, checks, sensors and schedules."""
