"""The reference app's Temporal side: its crons (Temporal schedules, ``workflows.crons``)."""
