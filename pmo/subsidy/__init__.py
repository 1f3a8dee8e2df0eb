"""Subsidy: base-amount tables, registrations, allocations, union transfers, grants, applications and estimate review."""
