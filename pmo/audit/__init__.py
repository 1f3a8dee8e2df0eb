"""The audit trail: who did what, when, with the values before and after, in the same transaction."""
