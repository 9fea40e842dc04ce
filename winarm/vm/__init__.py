"""One VM's life: launch, and the supervisor and its parts (control, storage pause, share watch)."""
