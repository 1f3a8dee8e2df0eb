"""Flask-free shared kernel: clock, errors, types, dates, tables, files. Imports nothing else from pmo."""
