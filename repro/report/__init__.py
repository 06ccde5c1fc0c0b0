"""What a run reports: trial records (records), verdict groups (summary), the terminal and files (render),
and old store vs new store (comparison)."""
