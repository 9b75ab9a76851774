"""Training infrastructure shared by the detection and classification tasks."""
