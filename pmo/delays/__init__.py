"""Delay signals as of any date, their severity and each body's status; follow-up cases."""
