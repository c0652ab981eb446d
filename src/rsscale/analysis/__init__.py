"""From result files to tables and figures (no sampling happens here)."""
