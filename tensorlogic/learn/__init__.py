"""learn (work in progress)."""
