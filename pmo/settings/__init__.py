"""Portal-wide settings kept in the database (demo flag, thresholds an operator may change)."""
