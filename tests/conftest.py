import os

# Tests run on the CPU whatever the machine has, and never touch the user's cache.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
