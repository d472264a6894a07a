"""What state each job is in, and how it is shown: ``--status``, ``--list-jobs``,
``--history``.
"""
