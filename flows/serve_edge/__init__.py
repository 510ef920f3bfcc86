"""The search service on Ray Serve: its HTTP API, its deployment, and the commands that start and stop it."""
