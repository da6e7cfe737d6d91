"""runtime stage of tensorlogic."""
