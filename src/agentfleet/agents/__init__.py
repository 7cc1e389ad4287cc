"""Agent CLIs at run time: reading what each one prints, and telling a failure that a retry
can fix from one that it cannot."""
