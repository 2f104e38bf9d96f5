"""Task modes of the segmentation losses and the tensor shapes each mode expects.

=============  =====================  ==================================================
mode           logits                 target
=============  =====================  ==================================================
binary         (N, 1, *S)             hard: (N, *S) or (N, 1, *S), integer/bool 0/1
                                      soft: float (N, *S) or (N, 1, *S) in [0, 1]
multiclass     (N, C, *S), softmax    hard: (N, *S) or (N, 1, *S), integer class index
                                      in [0, C) or ``ignore_index``
                                      soft: float (N, C, *S), per-pixel probabilities
multilabel     (N, C, *S), sigmoid    hard: (N, C, *S) integer/bool 0/1
                                      soft: float (N, C, *S) in [0, 1]
=============  =====================  ==================================================

``*S`` is any number of spatial dimensions, usually ``(H, W)``.

Hard or soft is decided by dtype alone: an integer or bool target is hard, a floating target is
soft. For binary and multilabel the two give the same numbers on 0/1 values; entries equal to
``ignore_index`` are ignored in both. A soft multiclass target has no ignore value: a pixel counts
with the weight ``sum_c t_c`` (its labelled mass), so a pixel whose probability vector is all zeros
(unlabelled in both sources of a MixUp) is ignored exactly like an ``ignore_index`` pixel.
"""

BINARY_MODE = "binary"
MULTICLASS_MODE = "multiclass"
MULTILABEL_MODE = "multilabel"

MODES = (BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE)

REDUCTIONS = ("mean", "sum", "none")

__all__ = ["BINARY_MODE", "MULTICLASS_MODE", "MULTILABEL_MODE", "MODES", "REDUCTIONS"]
