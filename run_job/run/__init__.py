"""Local runs: the controller of one run, supervision of its process tree,
the job's lock, run records and history.
"""
