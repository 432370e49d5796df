"""Evaluation: verification accuracy, the paper's Table 1 and its deletion curves (Sec. 4)."""
