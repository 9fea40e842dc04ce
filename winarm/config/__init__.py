"""Settings: the settings table, values, host facts, the VM's file names, share and Windows checks."""
