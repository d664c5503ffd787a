"""A version's figures and report page, drawn in the run from what it computed (never at load)."""
