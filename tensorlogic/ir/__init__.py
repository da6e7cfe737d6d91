"""ir stage of tensorlogic."""
