"""Tasks plug a kind of problem (segmentation, detection) into the one training loop."""
