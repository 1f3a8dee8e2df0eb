"""Each body's plans and actuals per sub-task, their history, monthly closes and imports."""
