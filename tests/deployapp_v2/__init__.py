"""Version 2 of ``deployapp_v1``: a procedure removed, one renamed, two that changed kind."""
