"""Config and job files: YAML, JSON Schema, durations, schedules, the global
config, job files, ``--validate`` and the validation cache.
"""
