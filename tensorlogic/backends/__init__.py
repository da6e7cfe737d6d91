"""backends stage of tensorlogic."""
