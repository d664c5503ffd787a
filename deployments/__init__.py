"""How flows are run: the CLI, served deployments and schedules."""
