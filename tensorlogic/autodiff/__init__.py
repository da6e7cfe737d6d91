"""autodiff (work in progress)."""
