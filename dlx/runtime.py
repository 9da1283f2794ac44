"""JAX start-up settings shared by every command: caches, versions, devices."""

from __future__ import annotations

import logging
import os


def cache_dir() -> str:
    """Per-user cache: $DLX_CACHE_DIR, else $XDG_CACHE_HOME/dlx, else ~/.cache/dlx."""
    d = os.environ.get("DLX_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "dlx")
    return d


def compile_cache_enabled() -> bool:
    return os.environ.get("DLX_COMPILE_CACHE", "1").lower() not in ("0", "false", "no", "off")


def setup_jax(devices: int = 1) -> None:
    """Configure JAX before first use. Idempotent."""
    if devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        # On a CPU-only machine, expose N host devices so --devices N works there too.
        if os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       f" --xla_force_host_platform_device_count={devices}").strip()
    import jax

    for name in ("absl", "jax._src.xla_bridge", "orbax", "jax._src.compilation_cache"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if compile_cache_enabled():
        path = os.path.join(cache_dir(), "jax")
        try:
            os.makedirs(path, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", path)
            # Cache every compiled program: sweeps re-run the same small programs many times.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        except OSError:
            pass  # an unwritable cache only costs speed


def versions() -> dict:
    import flax
    import jax
    import optax

    from dlx import __version__

    return {"dlx": __version__, "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


def device_info() -> list[str]:
    import jax

    return [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in jax.devices()]
