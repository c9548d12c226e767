"""I/O clients for vendor APIs, SunSpec Modbus and Green Button files, and the raw landing zone."""
