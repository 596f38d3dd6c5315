"""Performance of scores on one split: `performance` (threshold and ranking metrics, their
bootstrap intervals, and the DVC plot data)."""
