"""Vendor protocol servers for the twin, one module per vendor, all reading one TwinHub."""
