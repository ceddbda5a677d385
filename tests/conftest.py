"""Shared fixtures. The Entra simulator's fixtures come from its own pytest plugin."""

pytest_plugins = ["entrasim.testing"]
