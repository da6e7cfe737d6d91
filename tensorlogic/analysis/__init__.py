"""analysis stage of tensorlogic."""
