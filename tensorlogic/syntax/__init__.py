"""syntax stage of tensorlogic."""
