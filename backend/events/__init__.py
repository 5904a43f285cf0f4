"""Events: the persisted per-user log of every change, and its live fan-out."""
