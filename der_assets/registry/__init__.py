"""The asset registry: subscribers, sites, meter points and devices, versioned.

`service` holds the operations the CLI and Dagster call; the other modules are the pieces.
"""
