"""The one-command demo: a generated green-screen clip, a background, a face preset and an OBS scene."""
