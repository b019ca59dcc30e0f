"""Version 1 of an app that a deploy changes (version 2 is ``deployapp_v2``)."""
