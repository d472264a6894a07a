"""After a run: which events fire and whether to mail (pure), mail and hooks.
"""
