"""Live usage of running sandboxes: samples from the engine's stats, and their stream."""
