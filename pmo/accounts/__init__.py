"""Accounts, roles and permissions, login sessions held on the server, API tokens."""
