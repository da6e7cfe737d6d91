"""plan stage of tensorlogic."""
