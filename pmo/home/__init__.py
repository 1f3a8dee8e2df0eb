"""Each role's home page: what that role does, at a glance."""
