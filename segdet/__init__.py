"""segdet: segmentation and detection training with mask- and box-exact mixing (docs/DESIGN.md)."""
