"""The one engine every tool runs (see engine.Flow)."""
